# Settings shared by every target that bake-ci generates for this repository.
# bake-ci reads this file together with its generated JSON; each generated target
# inherits "bake-ci", so labels, secrets, ssh and extra contexts stay in bake's language.
target "bake-ci" {
  labels = {
    "org.opencontainers.image.title"       = "bake-ci CI image"
    "org.opencontainers.image.description" = "Python and pinned test dependencies for bake-ci's own test suite"
  }
}
