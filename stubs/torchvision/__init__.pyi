# Stubs for the parts of torchvision 0.2x that typedexp uses (torchvision ships no py.typed).
__version__: str
