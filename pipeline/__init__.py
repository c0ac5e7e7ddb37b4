"""The library, one subpackage per step of the data flow (none knows of DVC or params.yaml).

formats -> sources (and synth) -> slices -> dataset -> learning -> evaluation, with reports beside
them; errors, writers at the top are shared by all.
"""
