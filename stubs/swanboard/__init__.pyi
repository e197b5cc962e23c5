# Stubs for the part of swanboard (SwanLab's local dashboard, swanlab[dashboard]) that typedexp
# uses; swanboard ships no type information. Checked against swanboard 0.1.10b2.

class SwanBoardRun:
    @staticmethod
    def run(path: str, host: str, port: int) -> None: ...
