from iclx.cli import main

main()
