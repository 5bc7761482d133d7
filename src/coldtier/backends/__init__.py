"""The built-in backends, each an :class:`~coldtier.store.ObjectStore` holding only what differs.

==========  ===========================  ===========================================
module      store                        how it spells "create only"
==========  ===========================  ===========================================
``local``   :class:`LocalStore`          fsynced temp file, ``os.link``, fsync the directory
``memory``  :class:`MemoryStore`         check-and-set under a process-wide lock
``s3``      :class:`S3Store`, R2         ``PutObject`` with ``If-None-Match: *``
``gcs``     :class:`GCSStore`            one-request upload with ``ifGenerationMatch=0``
==========  ===========================  ===========================================

They use only the public seam (:mod:`coldtier.store`) and their shared fsspec
base (``_fsspec.FsspecStore``); nothing of the engine.
"""
