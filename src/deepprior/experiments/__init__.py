"""The paper's experiments, each a function and a ``deepprior experiment`` command."""
