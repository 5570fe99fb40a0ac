# BUILD-file prelude (pants.toml [GLOBAL].build_file_prelude_globs): what the two distributions of
# this repository share, the plugin's (pants-plugins/BUILD) and the relay's (relay/BUILD).

# One version for both wheels; bump it here (tests read it from the built wheels' file names).
EXPORT_DISTS_VERSION = "0.1.0"

# Where the repository is published; the wheels' Project-URL lines point here.
EXPORT_DISTS_URL = "https://github.com/export-dists/export-dists"


def export_dists_artifact(name, description, readme_section, **kwargs):
    """`python_artifact` with the metadata both wheels carry (license, URLs, classifiers)."""
    return python_artifact(
        name=name,
        version=EXPORT_DISTS_VERSION,
        description=description,
        license="Apache-2.0",
        url=EXPORT_DISTS_URL,
        project_urls={
            "Homepage": EXPORT_DISTS_URL,
            "Documentation": EXPORT_DISTS_URL + "/blob/main/" + readme_section,
            "Source": EXPORT_DISTS_URL,
            "Issues": EXPORT_DISTS_URL + "/issues",
        },
        long_description_content_type="text/markdown",
        **kwargs,
    )
