"""Operations: dataset versions in git and DVC, the DVC remote, each stage's code dependencies."""
