"""ETL: source readers, synthetic sources and the Dask runner."""
