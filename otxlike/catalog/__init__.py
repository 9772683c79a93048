"""The catalog of backbones: what each library offers (introspected live, indexed on disk), the
arguments and output shapes of each backbone, and name lookup (:mod:`otxlike.catalog.lookup`).
It reads libraries and builds modules; it never touches a workspace."""
