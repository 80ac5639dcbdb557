"""TSN-style video scoring: the test protocol (protocol.py), frame readers
(readers.py), score files (scorefile.py), the pycaffe evaluation loop
(evaluate.py), accuracies (accuracy.py), their bootstrap intervals
(bootstrap.py) and score-file evaluation and fusion (metrics.py). Timing of
the nets lives in dcd.perf."""
