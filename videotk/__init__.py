"""videotk: video understanding on PaddlePaddle, with an ETL-first data pipeline."""

__version__ = "0.1.0"
