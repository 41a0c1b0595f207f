"""xtrc: multilingual NLP experiments compiled to a stage DAG, run locally or on Kubernetes."""

__version__ = "0.1.0"
