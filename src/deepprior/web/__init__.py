"""`deepprior serve`: a local web page and JSON API over a queue of jobs (see :mod:`.app`)."""
