#!/usr/bin/env python3
"""The generalization suite: `hints` against size-first on histories it was never tuned on.

Each case is a history made by ../shared/tools/deb2nix.py from the Debian indices in
../shared/data/debian, a learning window of W transitions (revisions 0..W) and a replay of the
next 4 (W..W+4). The cases cover several suites and seeds, large union images (desktop apps,
media tools, toolchains) with hundreds of names only they hold, fleets of small service
images, windows of 2 to 6
transitions, and quiet windows followed by busy ones (bookworm's point-release overlay, which
touches almost nothing, then its security overlay).

For every case, at 100 and 30 layers: `hints emit --range 0..W`, then `hints eval --range
W..W+4 --json`. It prints, per case and budget, the total update bytes of hints against
size-first, the worst image (its ratio and its excess in MiB per update), and fleet bytes
against size-first; with --per-image, every image. Then the issue's checks:
  - no image pulls more than 2% (or 1 MiB per update) over size-first;
  - the total update bytes are <= size-first's on every case;
  - fleet bytes <= 0.75 of size-first's at 100 layers and <= 0.60 at 30. Where even the floor
    (one layer per path, the fewest fleet bytes any layout can reach) is above that target, the
    case is reported as unattainable rather than failed, with the share of the attainable saving
    hints reached, (size-first - hints) / (size-first - floor).

With --excess, every image's updates are also read with `hints eval --pulls`, and the bytes
each layout pulls again unchanged (its excess over the floor) are summed over the suite by why
their layers were pulled: beside a change (a layer mate changed), a departure (the layer lost a
name) or re-laid (nothing in it changed or left), and over the images that pull more than
size-first, hints' less size-first's by the same causes; hints' are also summed by what formed
their layers (a group of the file, a merge the layerer made to fit the budget, the fallback, a
pin, or an image laid out as size-first: each layer's `origin`). With --in-sample, each case learns from the
replayed updates themselves (`emit --range W..W+4`, `eval --allow-overlap`): what the model
would reach if it knew the updates it is judged on, a bound on what better prediction can buy.

usage: bench/suite.py [--work /tmp/hints-suite] [--only NAME,...] [--per-image] [--excess] [--in-sample] [--json OUT]
"""
import argparse, json, os, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared")

DEVBOX = "devbox=build-essential,git,python3,nodejs,ruby,perl,curl,vim,tmux,openssh-client"
WEBSTACK = "webstack=nginx,postgresql,redis-server,php-cli,python3-django,nodejs"
SCIENCE = "science=python3-numpy,python3-scipy,python3-matplotlib,python3-pandas,python3-sklearn,python3-notebook|jupyter-notebook"
OFFICE = "office=libreoffice-writer,libreoffice-calc"
GRAPHICS = "graphics=gimp,inkscape"
MEDIA = "media=ffmpeg,imagemagick,sox,vlc"
TOOLCHAIN = "toolchain=gcc,g++,clang,cmake,golang,rustc,openjdk-17-jdk-headless|openjdk-*-jdk-headless"
DESKTOP = ("desktop=libreoffice-writer,libreoffice-calc,gimp,inkscape,ffmpeg,imagemagick,vlc,"
           "thunderbird,firefox-esr,evince,audacity,kdenlive,blender")
STUDIO = "studio=blender,kdenlive,audacity,gimp,ffmpeg,imagemagick,texlive-latex-base"
BUILDER = "builder=build-essential,clang,cmake,golang,rustc,openjdk-17-jdk-headless|openjdk-*-jdk-headless,nodejs,ruby,python3-dev,git"
MAIL = "mailsrv=postfix,dovecot-imapd,spamassassin"
GIS = "gis=gdal-bin,python3-gdal,postgis"
OPS = "ops=ansible,openssh-client,rsync,jq"
SMALL = "tiny=busybox,ca-certificates"
BROWSER = "browser=firefox-esr,chromium,thunderbird,evince"
DBSRV = "dbsrv=mariadb-server,apache2,php,redis-server"
# Images no history before 2026-12-04 had: a final check on roots, unions and services never seen.
LANGS = "langs=ghc,erlang,elixir"
DATASCI = "datasci=r-base,octave,python3-torch"
QGIS = "qgis=qgis"
GNOME = "gnome=gnome-shell"
TEX = "tex=texlive-latex-extra"
NETSRV = "netsrv=bind9,squid,haproxy,samba"
EDITOR = "editor=emacs-nox,neovim"
MQ = "mq=rabbitmq-server"
RAILS = "rails=ruby-rails"
FPM = "fpm=php-fpm"
PROM = "prom=prometheus"
# A fleet of ten small service images over one base.
SERVICES = ["nginx=nginx", "redis=redis-server", "pg=postgresql", "django=python3-django", "node=nodejs",
            "ruby=ruby", "php=php-cli", "sshd=openssh-server", "tools=curl,jq", "go=golang"]

QUIET_BUSY = "bookworm,~4,bookworm+bookworm-updates,~4,bookworm+bookworm-updates+bookworm-security"
SECURITY = "bookworm,bookworm+bookworm-updates,~10,bookworm+bookworm-updates+bookworm-security"
TESTING = "trixie,~12,forky"

# name: (history, seed, images, learning windows)
CASES = {
    "quiet-busy-desktop": (QUIET_BUSY, "7", [OFFICE, GRAPHICS, MEDIA, TOOLCHAIN, DESKTOP, WEBSTACK], [4]),
    "quiet-busy-builder": (QUIET_BUSY, "8", [DEVBOX, BUILDER, SCIENCE, STUDIO, SMALL], [4]),
    "security-union": (SECURITY, "3", [DESKTOP, MEDIA, OFFICE, MAIL, SMALL], [2, 6]),
    "security-builder": (SECURITY, "4", [BUILDER, DEVBOX, GIS, OPS], [4]),
    "testing-desktop": (TESTING, "11", [DESKTOP, GRAPHICS, OFFICE, WEBSTACK, SMALL], [2, 4]),
    "testing-studio": (TESTING, "12", [STUDIO, MEDIA, SCIENCE, DEVBOX], [6]),
    "testing-builder": (TESTING, "13", [BUILDER, TOOLCHAIN, OPS, MAIL, SMALL], [4]),
    "testing-coarse": ("trixie,~8,forky", "14", [DESKTOP, SCIENCE, WEBSTACK, GIS], [2]),
    "bookworm-to-trixie": ("bookworm,~10,trixie", "15", [DESKTOP, BUILDER, WEBSTACK, SMALL], [4]),
    "quiet-then-testing": ("bookworm,~3,bookworm+bookworm-updates,~6,trixie", "16", [STUDIO, OFFICE, DEVBOX, MAIL], [2]),
    # Added after the renames and identities of 2026-12-02 were tuned on the cases above, as a
    # check on histories they were not tuned on.
    "testing-mix": (TESTING, "21", [DESKTOP, DEVBOX, GIS, SMALL], [4]),
    "security-tools": (SECURITY, "22", [STUDIO, TOOLCHAIN, OPS, WEBSTACK], [4]),
    "b2t-science": ("bookworm,~10,trixie", "23", [SCIENCE, MEDIA, MAIL, OFFICE], [4]),
    "coarse-builder": ("trixie,~8,forky", "24", [BUILDER, GRAPHICS, DEVBOX], [2, 4]),
    # Added with the rule that a backtest of one replayed update allows no excess (2026-12-02,
    # ninth session): short windows (2 and 3 transitions) on histories it was not tuned on.
    "coarse-desktop-ops": ("trixie,~8,forky", "31", [DESKTOP, DEVBOX, OPS], [2, 3]),
    "security-media": (SECURITY, "32", [BUILDER, MEDIA, SMALL], [2, 3]),
    "b2t-studio": ("bookworm,~10,trixie", "33", [STUDIO, WEBSTACK, GIS], [2, 3]),
    "testing-toolchain": (TESTING, "34", [TOOLCHAIN, OFFICE, SCIENCE, MAIL], [2, 3]),
    # Made after that rule was committed, as a second check on short windows.
    "coarse-studio-mail": ("trixie,~8,forky", "41", [STUDIO, BUILDER, MAIL], [2, 3]),
    "security-desktop": (SECURITY, "42", [DESKTOP, GIS, DEVBOX], [2, 3]),
    "b2t-office-tools": ("bookworm,~10,trixie", "43", [OFFICE, TOOLCHAIN, OPS, SMALL], [2, 3]),
    "testing-graphics": (TESTING, "44", [GRAPHICS, MEDIA, WEBSTACK, DEVBOX], [2, 3]),
    # Made on 2026-12-03, after the whole-layer singles and their room were committed, as a third
    # check: longer windows (4 and 6 transitions) beside short ones.
    "testing-web-science": (TESTING, "51", [WEBSTACK, MAIL, SCIENCE, SMALL], [4, 6]),
    "security-studio-ops": (SECURITY, "52", [STUDIO, DESKTOP, OPS], [3, 6]),
    "b2t-builder-gis": ("bookworm,~10,trixie", "53", [BUILDER, GIS, GRAPHICS, SMALL], [2, 4]),
    "coarse-media-office": ("trixie,~8,forky", "54", [MEDIA, OFFICE, TOOLCHAIN, DEVBOX], [3, 4]),
    # Made after the room of an image within its budget and the one-update rule were committed
    # (2026-12-03), as a check on them.
    "testing-office-gis": (TESTING, "61", [OFFICE, GIS, OPS, SMALL], [2, 4]),
    "security-graphics-mail": (SECURITY, "62", [GRAPHICS, MAIL, DEVBOX, SCIENCE], [3, 4]),
    "b2t-desktop-tools": ("bookworm,~10,trixie", "63", [DESKTOP, TOOLCHAIN, MAIL], [2, 6]),
    "coarse-web-studio": ("trixie,~8,forky", "64", [WEBSTACK, STUDIO, OPS, SMALL], [3, 4]),
    # Made after joins the window cannot show were left to the layerer (2026-12-03, sixth
    # session), as a check on that rule: migrations and toolchains, where every top-level tool
    # changes at every step.
    "b2t-toolchain-web": ("bookworm,~10,trixie", "71", [TOOLCHAIN, WEBSTACK, SMALL], [4, 6]),
    "testing-builder-media": (TESTING, "72", [BUILDER, MEDIA, OFFICE], [3, 6]),
    "security-toolchain-gis": (SECURITY, "73", [TOOLCHAIN, GIS, MAIL], [2, 4]),
    "coarse-desktop-science": ("trixie,~8,forky", "74", [DESKTOP, SCIENCE, OPS, SMALL], [3, 4]),
    # A second check on that rule, made the same session. b2t-media-gis W=4 at 100 layers found
    # devbox 3.7% over size-first: a group's plain `cpp` took in trixie's compilers, which
    # parseDrvName names alike; group members now match their identity only.
    "security-builder-office": (SECURITY, "81", [BUILDER, OFFICE, SMALL], [3, 6]),
    "b2t-media-gis": ("bookworm,~10,trixie", "82", [MEDIA, GIS, DEVBOX], [2, 4]),
    "testing-toolchain-desktop": (TESTING, "83", [TOOLCHAIN, DESKTOP, MAIL], [4, 6]),
    "quiet-then-b2t": ("bookworm,~3,bookworm+bookworm-updates,~6,trixie", "84", [TOOLCHAIN, STUDIO, OPS], [2, 4]),
    # A third check, made after the identity rule. coarse-office-toolchain W=2 at 30 layers found
    # a sink again (toolchain 1.154): its tools share a deep base whose never-bumped sources'
    # prior rates summed beyond the window; shared sources now count only where they bumped.
    "testing-media-ops": (TESTING, "91", [MEDIA, OPS, WEBSTACK, SMALL], [3, 6]),
    "security-studio-gis": (SECURITY, "92", [STUDIO, GIS, DEVBOX], [2, 4]),
    "b2t-builder-science": ("bookworm,~10,trixie", "93", [BUILDER, SCIENCE, MAIL], [4, 6]),
    "coarse-office-toolchain": ("trixie,~8,forky", "94", [OFFICE, TOOLCHAIN, GRAPHICS, SMALL], [2, 4]),
    # A fourth and fifth check, made on 2026-12-03 (seventh session) with no rule changed since the
    # third: two images no earlier history has (a browser union, a database and web server), a
    # quiet start followed by security updates and a migration, and windows of 2 to 6.
    "testing-browser-db": (TESTING, "101", [BROWSER, DBSRV, SMALL], [3, 5]),
    "security-science-devbox": (SECURITY, "102", [SCIENCE, DEVBOX, WEBSTACK], [2, 5]),
    "b2t-desktop-db": ("bookworm,~10,trixie", "103", [DESKTOP, DBSRV, OPS], [3, 4]),
    "quiet-sec-b2t": ("bookworm,~3,bookworm+bookworm-updates+bookworm-security,~5,trixie", "104", [GRAPHICS, BUILDER, MAIL, SMALL], [2, 4]),
    "security-browser-ops": (SECURITY, "111", [BROWSER, OPS, DEVBOX, SMALL], [3, 6]),
    "testing-db-studio": (TESTING, "112", [DBSRV, STUDIO, MAIL], [2, 4]),
    "b2t-browser-science": ("bookworm,~10,trixie", "113", [BROWSER, SCIENCE, GIS], [2, 5]),
    "coarse-db-builder": ("trixie,~8,forky", "114", [DBSRV, BUILDER, MEDIA, SMALL], [3, 4]),
    # Made the same session: fleets of small service images (10, and 10 beside the desktop
    # union). testing-fleet W=3 at 30 layers found pg 18% over size-first behind a backtest of
    # one update; such a backtest now asks for a gain beyond chance (docs/bench.md, "One
    # replayed update: a gain beyond chance").
    "testing-fleet": (TESTING, "121", SERVICES, [3, 5]),
    "security-fleet": (SECURITY, "122", SERVICES, [2, 4]),
    "b2t-fleet": ("bookworm,~10,trixie", "123", SERVICES + [DESKTOP], [4, 6]),
    # Made after a single replayed update was asked for a gain beyond chance (2026-12-03,
    # seventh session), as a check on it: short windows, fleets, the new images.
    "testing-fleet-short": (TESTING, "131", SERVICES, [2, 3]),
    "coarse-fleet-studio": ("trixie,~8,forky", "132", SERVICES[:5] + [STUDIO], [3, 4]),
    "security-browser-media": (SECURITY, "133", [BROWSER, MEDIA, SMALL], [2, 3]),
    "b2t-db-toolchain": ("bookworm,~10,trixie", "134", [DBSRV, TOOLCHAIN, GIS], [2, 3]),
    # Made the same session, with windows of 4 to 6 (backtests of several updates).
    # coarse-browser-builder W=4 found mailsrv 7.5% over size-first at 100 layers and 2.9% at 30:
    # libicu78 coexisted with libicu76 for a revision, then took its place in libicu76's group
    # (docs/bench.md, "A rename that moves an unchanged path"). The 100-layer row is within since
    # a loss within the allowance is forgiven only beyond chance; the 30-layer one since a rename
    # has a layer of its own beside its predecessor's group.
    "testing-browser-gis": (TESTING, "141", [BROWSER, GIS, OPS, SMALL], [4, 6]),
    "security-db-desktop": (SECURITY, "142", [DBSRV, DESKTOP, DEVBOX], [4, 5]),
    "b2t-fleet-science": ("bookworm,~10,trixie", "143", SERVICES[5:] + [SCIENCE], [5, 6]),
    "coarse-browser-builder": ("trixie,~8,forky", "144", [BROWSER, BUILDER, MAIL], [4]),
    # Made after a loss within the allowance came to be forgiven only beyond chance (2026-12-03,
    # eighth session), as a check on it: windows of 4 to 6, each history with a small image.
    # testing-desktop-fleet found django (W=4, 30 layers) and pg (W=5) over size-first, behind
    # backtests level with it; unresolved (docs/bench.md, "A loss within the allowance, forgiven
    # only beyond chance").
    "testing-desktop-fleet": (TESTING, "151", SERVICES[:4] + [DESKTOP, MAIL], [4, 5]),
    "security-browser-builder": (SECURITY, "152", [BROWSER, BUILDER, SMALL], [4, 6]),
    "b2t-studio-db": ("bookworm,~10,trixie", "153", [STUDIO, DBSRV, MAIL, SMALL], [4, 5]),
    "coarse-media-devbox": ("trixie,~8,forky", "154", [MEDIA, DEVBOX, OPS, SMALL], [4]),
    # Made after a rename came to have a layer of its own beside its predecessor's group
    # (2026-12-03, ninth session), as a check on it: histories that cross a release (soname
    # and interpreter renames), windows of 4 to 6.
    "b2t-devbox-mail": ("bookworm,~10,trixie", "161", [DEVBOX, MAIL, OPS, SMALL], [4, 5]),
    "coarse-studio-fleet": ("trixie,~8,forky", "162", SERVICES[4:8] + [STUDIO], [4]),
    "testing-builder-office": (TESTING, "163", [BUILDER, OFFICE, SMALL], [4, 6]),
    # Made after the room for merges an image within its budget does not need came to be a
    # quarter of the allowance (2026-12-03, tenth session), as a check on it: small service
    # images beside a union image, whose groups the room limits; windows of 4 and 5.
    "security-fleet-studio": (SECURITY, "171", SERVICES[:5] + [STUDIO], [4, 5]),
    "testing-office-fleet": (TESTING, "172", SERVICES[5:] + [OFFICE, OPS], [4]),
    "quiet-busy-mail-gis": (QUIET_BUSY, "173", [MAIL, GIS, DEVBOX, SMALL], [4]),
    # Made after a trusted image's loss within the allowance came to be forgiven only where
    # other trusted images' gains pay for it (2026-12-03, tenth session), as a check on it: small
    # images with little to gain, windows of 4 to 6.
    "testing-fleet-ops": (TESTING, "181", SERVICES + [OPS], [4, 5]),
    "b2t-fleet-small": ("bookworm,~10,trixie", "182", SERVICES[:6] + [SMALL], [4]),
    "security-mail-ops": (SECURITY, "183", [MAIL, OPS, SMALL, SERVICES[0]], [4, 6]),
    # Made after the room for merges an image within its budget does not need came to be an
    # eighth of the allowance (2026-12-03, tenth session), as a check on it: small images beside
    # unions and toolchains, windows of 4 to 6.
    "b2t-fleet-desktop": ("bookworm,~10,trixie", "191", SERVICES[2:6] + [DESKTOP], [4, 6]),
    "coarse-toolchain-fleet": ("trixie,~8,forky", "192", SERVICES[6:] + [TOOLCHAIN, SMALL], [4]),
    "security-science-fleet": (SECURITY, "193", SERVICES[:3] + [SCIENCE, MEDIA], [4, 5]),
    # Made on 2026-12-03 (eleventh session), before a change to the miner, as a check on the
    # committed one: databases and browsers beside small images, a fleet beside a builder.
    "testing-dbsrv-browser": (TESTING, "201", [DBSRV, BROWSER, OPS, SMALL], [4, 6]),
    "security-fleet-builder": (SECURITY, "202", SERVICES[4:8] + [GIS, BUILDER], [4]),
    "b2t-browser-devbox": ("bookworm,~10,trixie", "203", [BROWSER, DEVBOX, DBSRV], [4, 5]),
    # Made after the fallback's size-first split came to stop at the paths the file places
    # (2026-12-03, eleventh session), as a check on it: migrations and toolchains, where new
    # names arrive below and beside known ones.
    "b2t-builder-browser": ("bookworm,~10,trixie", "211", [BUILDER, BROWSER, SMALL], [4, 6]),
    "testing-devbox-media": (TESTING, "212", [DEVBOX, MEDIA, DBSRV], [4]),
    "coarse-toolchain-office": ("trixie,~8,forky", "213", [TOOLCHAIN, OFFICE, DEVBOX, OPS], [3, 4]),
    # Made after that, with no rule changed (2026-12-03, eleventh session), as one more check.
    "security-devbox-office": (SECURITY, "221", [DEVBOX, OFFICE, BROWSER, SMALL], [4, 6]),
    "testing-gis-fleet": (TESTING, "222", SERVICES[3:7] + [GIS, SCIENCE], [4]),
    "b2t-media-builder": ("bookworm,~10,trixie", "223", [MEDIA, BUILDER, DBSRV, OPS], [4, 6]),
    "quiet-busy-studio-fleet": (QUIET_BUSY, "231", SERVICES[:4] + [STUDIO], [4]),
    "b2t-gis-graphics": ("bookworm,~10,trixie", "232", [GIS, GRAPHICS, DEVBOX, SMALL], [2, 3, 5]),
    "coarse-fleet-browser": ("trixie,~8,forky", "233", SERVICES[5:] + [BROWSER], [3, 4]),
    # Made after that (2026-12-03, eleventh session), as a second check on the fallback's split:
    # migrations to trixie, where a release's new compilers and libraries arrive below and
    # beside the names the window knew.
    "b2t-toolchain-devbox": ("bookworm,~10,trixie", "241", [TOOLCHAIN, DEVBOX, MAIL], [4, 6]),
    "b2t-builder-office": ("bookworm,~10,trixie", "242", [BUILDER, OFFICE, SMALL], [5]),
    "quiet-then-b2t-devbox": ("bookworm,~3,bookworm+bookworm-updates,~6,trixie", "243", [DEVBOX, BUILDER, GIS], [3, 4]),
    # Made on 2026-12-04 (twelfth session), with no rule changed, as a final check: images and
    # roots no earlier history has (language runtimes, a data-science union, a GIS desktop,
    # GNOME, TeX, network services, small services), every kind of history, windows of 2 to 6.
    # testing-langs-datasci W=6 found mq over size-first at both budgets: a group of erlang
    # libraries lost a member the new rabbitmq-server no longer needs, and was pulled whole
    # (docs/bench.md, "Six histories of images never seen, and a group that loses a member").
    "testing-langs-datasci": (TESTING, "251", [LANGS, DATASCI, MQ, SMALL], [4, 6]),
    "security-qgis-net": (SECURITY, "252", [QGIS, NETSRV, RAILS, PROM], [2, 4]),
    "b2t-gnome-tex": ("bookworm,~10,trixie", "253", [GNOME, TEX, EDITOR, FPM], [4, 5]),
    "quiet-busy-datasci-fleet": (QUIET_BUSY, "254", [DATASCI, MQ, RAILS, FPM, PROM, EDITOR], [4]),
    "coarse-qgis-langs": ("trixie,~8,forky", "255", [QGIS, LANGS, NETSRV], [3, 4]),
    "quiet-then-b2t-tex": ("bookworm,~3,bookworm+bookworm-updates,~6,trixie", "256", [TEX, GNOME, MQ, SMALL], [2, 4]),
    "dev": (None, None, None, [6]),
}
REPLAYED = 4


def run(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout


def dataset(work, name):
    if name == "dev":
        return os.path.join(SHARED, "data", "dev-history")
    history, seed, images, _ = CASES[name]
    out = os.path.join(work, name)
    if not os.path.exists(os.path.join(out, "manifest.json")):
        args = []
        for i in images:
            args += ["--image", i]
        run(sys.executable, os.path.join(SHARED, "tools", "deb2nix.py"), "build", "--data",
            os.path.join(SHARED, "data", "debian"), "--history", history, "--set", "none",
            "--seed", seed, *args, "--out", out)
    return out


# `hints eval --pulls --json`'s fields for bytes pulled again unchanged, and how to print them.
CARRIED = {"beside_a_change": "beside a change", "departure": "departures", "relaid": "re-laid"}
# What formed a pulled layer (a layer's `origin`).
ORIGINS = ("group", "merged", "fallback", "pin", "baseline")


def carried(hints, replay, images):
    """Per image and strategy, the bytes its layouts pulled again unchanged over the replay, by
    why, and by what formed their layers."""
    total = {}
    for im in images:
        for update in json.loads(run(hints, "eval", *replay, "--pulls", im, "--json"))["updates"]:
            for layout in update["layouts"]:
                t = total.setdefault(im, {}).setdefault(layout["strategy"], {**dict.fromkeys(CARRIED, 0), "origin": dict.fromkeys(ORIGINS, 0)})
                for k in CARRIED:
                    t[k] += layout["carried_by"][k]
                for layer in layout["layers"]:
                    t["origin"][layer["origin"]] += layer["carried_bytes"]
    return total


def print_carried(rows):
    """The suite's bytes pulled again unchanged by why: against the floor, and where an image
    pulls more than size-first, hints' less size-first's (a changed path is pulled under every
    layout, so the difference lies in the unchanged ones)."""
    floor = sum(i["floor"] for r in rows for i in r["images"])
    by = lambda strategy, images: {k: sum(r["carried"][i["image"]][strategy][k] for r, i in images) for k in CARRIED}
    every = [(r, i) for r in rows for i in r["images"]]
    for strategy in ("hints", "size-first"):
        print(f"  {strategy}: pulled again unchanged, over the floor's {floor / 2**30:.1f} GiB: "
              + ", ".join(f"{CARRIED[k]} {v / 2**30:.2f} GiB ({v / floor:.2%})" for k, v in by(strategy, every).items()))
    origin = {o: sum(r["carried"][i["image"]]["hints"]["origin"][o] for r, i in every) for o in ORIGINS}
    print("  hints: the same bytes by what formed their layers: "
          + ", ".join(f"{o} {v / 2**30:.2f} GiB ({v / floor:.2%})" for o, v in origin.items()))
    losing = [(r, i) for r, i in every if i["hints"] > i["size_first"]]
    h, sf = by("hints", losing), by("size-first", losing)
    print(f"  {len(losing)} images pulling more than size-first, by {sum(i['hints'] - i['size_first'] for _, i in losing) / 2**20:.1f} MiB: "
          + ", ".join(f"{CARRIED[k]} {(h[k] - sf[k]) / 2**20:+.1f} MiB" for k in CARRIED))


def case(hints, work, name, window, layers, excess=False, in_sample=False):
    db = os.path.join(work, f"{name}.db")
    if not os.path.exists(db):
        run(hints, "-q", "scan", "--db", db, "--dataset", dataset(work, name))
    out = os.path.join(work, f"{name}-w{window}-{layers}.yaml")
    if os.path.exists(out):
        os.remove(out)
    learned = f"{window}..{window + REPLAYED}" if in_sample else f"0..{window}"
    emitted = run(hints, "emit", "--db", db, "--range", learned, "--max-layers", str(layers), "--out", out)
    replay = ["--db", db, "--hints", out, "--range", f"{window}..{window + REPLAYED}", "--max-layers", str(layers)]
    replay += ["--allow-overlap"] if in_sample else []
    d = json.loads(run(hints, "eval", *replay, "--json"))
    res = {m["strategy"]: m for m in d["results"]}
    per = {s: dict(res[s]["per_image_update_bytes"]) for s in ("size-first", "hints", "floor")}
    updates = REPLAYED
    images = []
    for im in d["images"]:
        sf, h, fl = per["size-first"][im], per["hints"][im], per["floor"][im]
        excess_mib = (h - sf) / updates / 2**20
        ok = h <= sf * 1.02 or excess_mib <= 1.0
        images.append({"image": im, "size_first": sf, "hints": h, "floor": fl, "ratio": h / max(sf, 1),
                       "excess_mib_per_update": excess_mib, "ok": ok})
    sf, h = res["size-first"], res["hints"]
    return {
        "case": name, "window": window, "layers": layers, "emit_summary": emitted.strip(),
        "update_ratio": h["update_bytes"] / max(sf["update_bytes"], 1),
        "update_x_floor": (sf["update_bytes"] / max(res["floor"]["update_bytes"], 1),
                           h["update_bytes"] / max(res["floor"]["update_bytes"], 1)),
        "fleet_ratio": h["fleet_bytes"] / max(sf["fleet_bytes"], 1),
        "fleet_floor_ratio": res["floor"]["fleet_bytes"] / max(sf["fleet_bytes"], 1),
        "storage_ratio": h["storage_bytes"] / max(sf["storage_bytes"], 1),
        "images": images,
        **({"carried": carried(hints, replay, d["images"])} if excess else {}),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/hints-suite")
    ap.add_argument("--only", default="")
    ap.add_argument("--layers", default="100,30")
    ap.add_argument("--per-image", action="store_true")
    ap.add_argument("--excess", action="store_true")
    ap.add_argument("--in-sample", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--hints", default=os.path.join(ROOT, "target", "release", "hints"))
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    names = [n for n in CASES if not a.only or n in a.only.split(",")]
    rows, failures, unattainable = [], [], []
    print(f"{'case':<20} {'W':>2} {'K':>4} {'sf xfl':>7} {'hints xfl':>9} {'upd/sf':>7} "
          f"{'worst image':<12} {'ratio':>6} {'MiB/upd':>8} {'fleet/sf':>8} {'floor':>6} {'stor/sf':>7}")
    for name in names:
        for window in CASES[name][3]:
            for layers in map(int, a.layers.split(",")):
                r = case(a.hints, a.work, name, window, layers, a.excess, a.in_sample)
                rows.append(r)
                worst = max(r["images"], key=lambda i: (not i["ok"], i["ratio"]))
                print(f"{name:<20} {window:>2} {layers:>4} {r['update_x_floor'][0]:>7.3f} {r['update_x_floor'][1]:>9.3f} "
                      f"{r['update_ratio']:>7.3f} {worst['image']:<12} {worst['ratio']:>6.3f} "
                      f"{worst['excess_mib_per_update']:>8.1f} {r['fleet_ratio']:>8.3f} {r['fleet_floor_ratio']:>6.3f} {r['storage_ratio']:>7.3f}", flush=True)
                if a.per_image:
                    for i in r["images"]:
                        print(f"    {i['image']:<14} size-first {i['size_first'] / 2**20:>9.1f} MiB  hints {i['hints'] / 2**20:>9.1f} MiB"
                              f"  floor {i['floor'] / 2**20:>9.1f} MiB  ratio {i['ratio']:.3f}{'' if i['ok'] else '  OVER'}")
                bad = [i["image"] for i in r["images"] if not i["ok"]]
                if bad:
                    failures.append(f"{name} W={window} K={layers}: images over size-first: {', '.join(bad)}")
                if r["update_ratio"] > 1.0:
                    failures.append(f"{name} W={window} K={layers}: total update bytes {r['update_ratio']:.3f} x size-first")
                limit = 0.75 if layers >= 100 else 0.60
                share = (1 - r["fleet_ratio"]) / max(1 - r["fleet_floor_ratio"], 1e-9)
                if r["fleet_floor_ratio"] > limit:
                    unattainable.append(f"{name} W={window} K={layers}: floor {r['fleet_floor_ratio']:.3f} x size-first > {limit};"
                                        f" hints {r['fleet_ratio']:.3f}, {share:.0%} of the attainable saving")
                elif r["fleet_ratio"] > limit:
                    failures.append(f"{name} W={window} K={layers}: fleet {r['fleet_ratio']:.3f} x size-first (target <= {limit};"
                                    f" floor {r['fleet_floor_ratio']:.3f}; {share:.0%} of the attainable saving)")
    for layers in map(int, a.layers.split(",")):
        sel = [r for r in rows if r["layers"] == layers]
        mean = lambda k: sum(r[k] for r in sel) / len(sel)
        print(f"mean over {len(sel)} cases at {layers} layers: update/sf {mean('update_ratio'):.4f}, "
              f"fleet/sf {mean('fleet_ratio'):.4f}, storage/sf {mean('storage_ratio'):.4f}; "
              f"hints x floor {sum(r['update_x_floor'][1] for r in sel) / len(sel):.4f} "
              f"(size-first {sum(r['update_x_floor'][0] for r in sel) / len(sel):.4f})")
        if a.excess:
            print_carried(sel)
    print(f"{len(unattainable)} fleet target(s) unattainable by any layout" + "".join(f"\n  {u}" for u in unattainable))
    print(f"{len(failures)} check(s) failed" + "".join(f"\n  {f}" for f in failures))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
