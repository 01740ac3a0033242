#!/usr/bin/env bash
# Installs what otad needs on a Debian machine and builds wolfSSL, libcurl and libarchive
# from Debian 13 (trixie) source packages into a cached prefix outside the source tree.
#
# Why from source: Debian 12 ships no libcurl on wolfSSL, its wolfSSL lacks RC2 (real
# servers' PKCS#12 certificate bags) and IP-address SAN matching, and its shared libarchive
# drags libxml2/ICU/libstdc++ into every process. See README.md, "Dependencies".
#
# Usage: scripts/deps.sh            install packages (if root) and build into $OTAD_DEPS
#        OTAD_DEPS=/path scripts/deps.sh
# Prints the prefix on its last line. Re-running is cheap: a stamp records what was built.
set -euo pipefail

OTAD_DEPS=${OTAD_DEPS:-${XDG_CACHE_HOME:-$HOME/.cache}/otad-deps}
here=$(cd "$(dirname "$0")" && pwd)

WOLFSSL_FLAGS="--enable-static --disable-shared --enable-rc2 --enable-des3 --enable-opensslextra \
 --enable-curl --enable-ip-alt-name --enable-pkcs11 --enable-ed25519 --enable-curve25519 \
 --enable-certgen --enable-certreq --enable-certext --enable-keygen --enable-tls13 \
 --enable-session-ticket --enable-sni --enable-pkcs12 --enable-aesgcm --enable-sha512 \
 --enable-ecc --enable-supportedcurves --enable-alpn --enable-base64encode --disable-examples \
 --disable-crypttests --disable-benchmark --enable-pwdbased --enable-pkcs7 --enable-certservice \
 --enable-sp --with-pic"
# --enable-sp(-asm): wolfSSL's fixed-size P-256/RSA code (and its x86-64 assembly): a fleet's
# TLS handshakes cost about 40 % less CPU (200 devices x 3 polls: 3.2 -> 1.9 CPU s).
# HAVE_EXT_CACHE: wolfSSL calls the new-session callback libcurl keeps TLS sessions with;
# HAVE_EX_DATA: without it wolfSSL_set_app_data() is a no-op, that callback finds no
# connection and libcurl never stores a session (connect-per-poll never resumed).
WOLFSSL_CFLAGS="-O2 -DWOLFSSL_PUBLIC_MP -DHAVE_EXT_CACHE -DHAVE_EX_DATA"
# AES-NI and wolfSSL's x86-64 assembly (SHA-2, GCM): a 100 MiB download goes from 0.24x to
# about 0.45x curl's (OpenSSL, to /dev/null) throughput on the same machine; otad also hashes
# SHA-256 and SHA-512 and writes to disk (bench/update.sh). Other architectures keep the
# portable C code.
if [ "$(uname -m)" = x86_64 ]; then
	WOLFSSL_FLAGS="$WOLFSSL_FLAGS --enable-aesni --enable-intelasm --enable-sp-asm"
fi
CURL_FLAGS="--enable-static --disable-shared --disable-ftp --disable-file --disable-ldap \
 --disable-ldaps --disable-rtsp --disable-dict --disable-telnet --disable-tftp --disable-pop3 \
 --disable-imap --disable-smb --disable-smtp --disable-gopher --disable-mqtt --disable-manual \
 --disable-docs --disable-ntlm --disable-alt-svc --disable-websockets --without-libpsl \
 --without-brotli --without-zstd --without-nghttp2 --without-nghttp3 --without-ngtcp2 \
 --without-libidn2 --without-librtmp --without-libssh2 --without-libgsasl --with-zlib \
 --disable-threaded-resolver --with-pic"
ARCHIVE_FLAGS="-DENABLE_OPENSSL=OFF -DENABLE_NETTLE=OFF -DENABLE_MBEDTLS=OFF -DENABLE_LIBXML2=OFF \
 -DENABLE_EXPAT=OFF -DENABLE_LZ4=OFF -DENABLE_LZO=OFF -DENABLE_LIBB2=OFF -DENABLE_BZip2=OFF \
 -DENABLE_ACL=OFF -DENABLE_XATTR=OFF -DENABLE_ICONV=OFF -DENABLE_CNG=OFF -DENABLE_TAR=OFF \
 -DENABLE_CPIO=OFF -DENABLE_CAT=OFF -DENABLE_UNZIP=OFF -DENABLE_TEST=OFF -DENABLE_ZLIB=ON \
 -DENABLE_LZMA=ON -DENABLE_ZSTD=ON -DENABLE_PCREPOSIX=OFF -DENABLE_PCRE2POSIX=OFF \
 -DBUILD_SHARED_LIBS=OFF -DENABLE_WERROR=OFF -DENABLE_LibGCC=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON"
stamp_want=$(printf '%s\n' "v3" "$WOLFSSL_FLAGS" "$WOLFSSL_CFLAGS" "$CURL_FLAGS" "$ARCHIVE_FLAGS" | sha256sum | cut -c1-16)

log() { printf 'deps: %s\n' "$*" >&2; }

install_packages() {
	local pkgs=(build-essential cmake pkg-config libuv1-dev libcjson-dev libinih-dev
		libcmocka-dev libmicrohttpd-dev libgnutls28-dev libsqlite3-dev zlib1g-dev liblzma-dev
		libzstd-dev dpkg-dev autoconf automake libtool openssl zip unzip jq time curl clang clang-format libclang-rt-14-dev ca-certificates
		softhsm2 opensc valgrind) # softhsm2, opensc: a PKCS#11 token and pkcs11-tool (HSM tests)
	local missing=()
	for p in "${pkgs[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" != 0 ]; then
		log "missing packages: ${missing[*]} (run as root or install them)"; exit 1
	fi
	log "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# A deb-src entry for trixie with the URIs of the machine's own Debian sources.
add_trixie_src() {
	local f=/etc/apt/sources.list.d/otad-trixie-src.sources
	[ -f "$f" ] && return 0
	local uris
	uris=$( { grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{for(i=2;i<=NF;i++)print $i}';
		grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}'; } |
		grep -v -- '-security' | grep -i debian | sort -u | head -n1 || true)
	[ -n "$uris" ] || { log "no Debian URI found in the apt sources"; exit 1; }
	[ "$(id -u)" = 0 ] || { log "need root to add a deb-src entry for trixie"; exit 1; }
	log "adding deb-src trixie from $uris"
	printf 'Types: deb-src\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uris" > "$f"
	apt-get update -qq
}

# The upstream versions otad is built and tested with (README.md, "Dependencies").
SOURCES="curl=8.14.1 wolfssl=5.7.2 libarchive=3.7.4"

# fetch_source PKG UPSTREAM: the newest Debian revision of UPSTREAM that the trixie index
# lists and the mirror still has (seen: curl 8.14.1-2+deb13u7 listed, its files 404, while
# deb13u5 is there); PKG/trixie when the index lists no revision of UPSTREAM.
fetch_source() {
	local pkg=$1 upstream=$2 v
	for v in $(apt-cache showsrc "$pkg" 2>/dev/null | awk '/^Version:/ {print $2}' |
		grep -E "^([0-9]+:)?${upstream//./\\.}-" | sort -rVu); do
		rm -rf "$pkg"-*/
		apt-get source -qq "$pkg=$v" >/dev/null 2>&1 && return 0
		log "$pkg $v could not be fetched from the mirror; trying an older revision"
	done
	apt-get source -qq "$pkg/trixie" >/dev/null 2>&1 && return 0
	log "cannot fetch the source of $pkg $upstream from any configured mirror; the last try:"
	apt-get source "$pkg/trixie" || true
	exit 1
}

fetch_sources() {
	local src=$1 pair
	mkdir -p "$src"
	cd "$src"
	if ! ls -d wolfssl-*/ curl-*/ libarchive-*/ >/dev/null 2>&1; then
		add_trixie_src
		for pair in $SOURCES; do
			ls -d "${pair%%=*}"-*/ >/dev/null 2>&1 && continue
			log "apt-get source ${pair%%=*} ${pair#*=} (trixie)"
			fetch_source "${pair%%=*}" "${pair#*=}"
		done
	fi
}

build_wolfssl() {
	local d; d=$(ls -d "$1"/wolfssl-*/ | head -n1)
	log "building wolfSSL in $d"
	cd "$d"
	[ -x configure ] || ./autogen.sh >/dev/null 2>&1
	# shellcheck disable=SC2086
	./configure --prefix="$OTAD_DEPS" $WOLFSSL_FLAGS CFLAGS="$WOLFSSL_CFLAGS" >/dev/null
	make -j"$(nproc)" >/dev/null
	make install >/dev/null
}

build_curl() {
	local d; d=$(ls -d "$1"/curl-*/ | head -n1)
	log "building libcurl in $d"
	cd "$d"
	[ -x configure ] || autoreconf -fi >/dev/null 2>&1
	# shellcheck disable=SC2086
	PKG_CONFIG_PATH="$OTAD_DEPS/lib/pkgconfig" ./configure --prefix="$OTAD_DEPS" \
		--with-wolfssl="$OTAD_DEPS" $CURL_FLAGS LIBS="-lm -lpthread" >/dev/null
	make -j"$(nproc)" -C lib >/dev/null
	make -C lib install >/dev/null
	make -C include install >/dev/null
	make install-pkgconfigDATA install-binSCRIPTS >/dev/null 2>&1 || true
}

build_libarchive() {
	local d; d=$(ls -d "$1"/libarchive-*/ | head -n1)
	log "building libarchive in $d"
	rm -rf "$1/build-archive"; mkdir -p "$1/build-archive"; cd "$1/build-archive"
	# shellcheck disable=SC2086
	cmake "$d" -DCMAKE_INSTALL_PREFIX="$OTAD_DEPS" -DCMAKE_BUILD_TYPE=Release $ARCHIVE_FLAGS >/dev/null
	make -j"$(nproc)" archive_static >/dev/null
	make install >/dev/null 2>&1 || cmake --install . >/dev/null
}

install_packages
if [ -f "$OTAD_DEPS/.stamp" ] && [ "$(cat "$OTAD_DEPS/.stamp")" = "$stamp_want" ]; then
	log "cached in $OTAD_DEPS"
else
	command -v dpkg-source >/dev/null || { log "dpkg-dev is needed"; exit 1; }
	rm -rf "$OTAD_DEPS"; mkdir -p "$OTAD_DEPS"
	src="$OTAD_DEPS/src"
	fetch_sources "$src"
	build_wolfssl "$src"
	build_curl "$src"
	build_libarchive "$src"
	echo "$stamp_want" > "$OTAD_DEPS/.stamp"
	log "built into $OTAD_DEPS"
fi
echo "$OTAD_DEPS"
