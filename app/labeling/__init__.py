"""Use cases: the one place where labeling behaviour lives. HTTP and CLI are shells over it."""
