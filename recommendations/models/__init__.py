"""The engine's own tables. None of them has a foreign key to a host model: products and
stores are referenced by their primary key as a string (see `adapters.BaseAdapter.key`)."""
