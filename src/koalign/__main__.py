from koalign.cli import main

main()
