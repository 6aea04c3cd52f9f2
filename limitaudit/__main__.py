from limitaudit.launch import main

# Guarded: worker processes (ingest.read_files) start by importing the main module.
if __name__ == "__main__":
    main()
