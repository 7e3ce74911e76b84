"""Documents: find seed files (``discover``), read them into text (``text``), tell boilerplate from
prose (``clean``) and split the text into chunks with exact offsets (``chunk``)."""
