from dnnh.cli.main import main

raise SystemExit(main())
