"""Infrastructure shared by every stage; stages import it and ``schemas``, never each other.

errors (one-line user errors), fsio (atomic writes, any fsspec filesystem), progress,
beam (runner selection), cliargs (validated option types), jobs (output cleanup, versions,
summaries), offline (no phoning home), url_lists (URL lists in img2dataset's formats, read
by ``wit crawl --urls`` and ``wit shards --urls``) and the network layer in
:mod:`pipeline.core.net`.
"""
