"""kling_omni: CometAPI Kling Omni Video (Kling 3.0 Omni and Kling O1) from plain Python.

No ComfyUI import anywhere in this package: it is the client, the request model and its
validation, the media codecs and the job journal. The ComfyUI nodes are thin wrappers.
"""
