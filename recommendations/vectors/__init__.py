"""Vectors in pgvector: the COPY writer, per-version vector indexes, atomic activation and
rollback, and the k-NN queries serving calls (`recommendations.vectors.queries`)."""
