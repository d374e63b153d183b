"""``python -m selfsup.theory``: the theory check (``selfsup.theory.check``)."""
from selfsup.theory.check import main

if __name__ == "__main__":
    main()
