from bake.cli import main

raise SystemExit(main())
