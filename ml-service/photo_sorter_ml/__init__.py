"""photo-sorter ML service: decode -> detect -> align -> embed -> suggest -> callback."""

__version__ = "0.2.0"
