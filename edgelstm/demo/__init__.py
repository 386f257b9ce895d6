"""``edgelstm demo``: the bundled Japanese Vowels classifiers compiled, run and reported.

The data set and models live in :mod:`.data` (package data); :mod:`.run` drives the demo,
:mod:`.table` prints its results.
"""
