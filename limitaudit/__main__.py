from limitaudit.cli import main

main()
