from alcycle.cli import main

main()
