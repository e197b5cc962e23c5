# Stubs for the one scikit-learn function typedexp uses (scikit-learn ships no py.typed).
