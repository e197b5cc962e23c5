from typedexp.cli import main

main()
