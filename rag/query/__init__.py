"""Answering a question: rank the chunks (``retrieve``, with ``lexical`` BM25 and the ``token_match``
re-scoring), decide whether they answer it (``decide``, with ``reference`` sentences and the quantity
check of ``answer_type``) and compose the quoted answer (``compose``)."""
