"""Site data made at the site: each POC site's synthetic imaging data from its scanner profile."""

from __future__ import annotations

from pathlib import Path

from consortium.data.imaging import load_profiles, write_site_data
from consortium.defaults import default_path

DEFAULT_PROFILES = default_path("poc_workspace/scanner_profiles.json")


def prepare_imaging(profiles_file: Path, site_roots: dict[str, Path], echo=print) -> None:
    """Generate ``<site root>/data/imaging`` for every site that has a profile.

    A site without a profile gets no imaging data (its imaging tasks then fail naming the path).
    """
    profiles = load_profiles(profiles_file)
    unknown = sorted(set(profiles) - set(site_roots))
    if unknown:
        raise ValueError(f"{profiles_file}: profiles for sites not in the consortium: {unknown}")
    for site, profile in profiles.items():
        folder = write_site_data(site_roots[site] / "data" / "imaging", profile)
        echo(f"{site}: {profile.n_images} synthetic {profile.dims}D images generated at the site ({folder})")
