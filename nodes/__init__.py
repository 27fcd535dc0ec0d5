"""The ComfyUI nodes: thin wrappers over kling_omni."""

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
