from main.cli import main

main()
