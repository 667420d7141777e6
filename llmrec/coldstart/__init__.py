"""Cold-start data steps of the generation paradigm (the book's recipes), used by the ``hybrid`` scorer:

* ``enrich``: a packaged LLM writes a richer description / keywords for an item from its title and
  fields; outputs validated, cached on disk, resumable; item embeddings can then use the enriched text;
* ``simulate``: for each cold-start item, users pre-filtered by embedding similarity are asked about
  by the LLM (P(Yes) of "would this user like it?"); the top ones become simulated training
  interactions (marked ``simulated``), built from known events only, for a CF model to retrain on.

Not a method folder: it registers no scorer, imports no method, and methods may use it.
"""
