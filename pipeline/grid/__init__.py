"""GETok grid tokens: vocabulary and codecs (tokens), mask proposals (proposals, sam, cache), greedy mask-to-token
selection (greedy), offset-region labelling (offsets), the stage (stage) and its quality report (quality).

Importing this package is cheap: torch / segment_anything load only when the SAM backend is built.
"""
