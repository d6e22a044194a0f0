"""Vectors in pgvector: the COPY writer, per-version HNSW indexes, atomic activation and
rollback, and the k-NN queries serving calls (`recommendations.vectors.queries`)."""
