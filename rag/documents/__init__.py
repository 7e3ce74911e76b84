"""Documents: find seed files (``discover``), tell each one's kind from its content and read it with its
reader (``formats``: ``text``, ``html``, ``pdf``, ``docx``), tell boilerplate from prose (``clean``), split
the text into chunks with exact offsets (``chunk``), and fetch documents by link (``fetch``, ``links``,
``names``)."""
