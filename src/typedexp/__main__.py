from typedexp.app.cli import main

main()
