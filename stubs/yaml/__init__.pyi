# Stubs for the part of PyYAML that typedexp.runs uses (PyYAML ships no py.typed; OmegaConf
# depends on it). Loaded documents are `object`: the reader checks every value's type.

__with_libyaml__: bool

class YAMLError(Exception): ...
class SafeLoader: ...
class CSafeLoader(SafeLoader): ...  # libyaml's C loader: about 15x faster on a job's hydra.yaml

def load(stream: str | bytes, Loader: type[SafeLoader]) -> object: ...
