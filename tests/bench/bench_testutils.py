"""Settings shared by the bench tests (a module of its own: conftest files are not importable by name)."""

#: run_bench keywords for a bench that takes seconds: 5 queries and 30 training images a class,
#: 8x8 inputs, small batches, one thread, no worker processes.
TINY = dict(queries_per_class=5, train_per_class=30, val_fraction=0.2, input_size=8, threads=1, num_workers=0,
            train_options={"batch_size": 40, "per_class": 4}, progress=False, log=lambda message: None)
