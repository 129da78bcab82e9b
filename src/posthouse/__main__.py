from posthouse.cli import main

raise SystemExit(main())
