"""The tools around the method: sweeps of runs and their worker processes, records and the README's tables,
the recipe and budget studies, rescoring of finished runs, curves from records, and the speed benchmark.
The method itself (data, graph, training, evaluation, figures, one run) is source/'s own modules."""
