/**
 * Environment variable names a deploy refuses in `env_overrides` unless the
 * application's `allowed_env_overrides` names them exactly.
 *
 * Why: a key allowed only to deploy may start the application's fixed deploy
 * command, not run commands of its own. Its overrides reach that command's
 * environment (`sh -c deploy_command`), so a variable that makes a shell, the
 * dynamic loader, an interpreter or a common tool load or run something named
 * in its value, or read its configuration from elsewhere, turns "deploy this
 * application" into "run anything on the server". (exec's `env` is not checked:
 * a key allowed to exec runs commands of its choosing by design.)
 *
 * This is a deny list. It covers the programs deploy commands usually run
 * (sh and bash, git, ssh, docker, node and its package managers, python, ruby,
 * perl, java, php, go, rust, make, cmake, C compilers, tar, rsync, curl, wget)
 * and cannot know every program on every server: an application whose deploy
 * key goes to CI should also set `allowed_env_overrides`, which accepts only
 * the names it lists.
 *
 * make is the extreme case: GNU make turns every environment variable into a
 * make variable and pastes variables into the recipe text it runs with sh. The
 * list refuses the variables make itself defines and its built-in rules use
 * (RM, MAKE, CC, TARGET_ARCH...), but for a deploy command that runs make, any
 * name the Makefile reads without setting it unconditionally can change what
 * runs (`?=` and `+=` keep the environment's value; under `make -e` it wins
 * over every assignment). There `allowed_env_overrides` is the only real
 * protection.
 *
 * Deliberately not listed: ordinary settings that name no code and no
 * configuration source (NODE_ENV, LANG, LC_*, TZ, TMPDIR, NO_PROXY, CI,
 * DEBIAN_FRONTEND, GOOS/GOARCH, CGO_ENABLED, feature flags).
 *
 * Matching is case-sensitive, as the environment is, except in groups marked
 * `anyCase`, whose readers ignore case (npm's config, Python's proxies).
 * An entry ending in `*` is a prefix.
 */
export interface RefusedEnvGroup {
  /** Completes "… is refused: <why>" in the 422 detail. */
  readonly why: string;
  readonly names: readonly string[];
  readonly anyCase?: true;
}

export const REFUSED_DEPLOY_ENV: readonly RefusedEnvGroup[] = [
  {
    // LD_PRELOAD / LD_AUDIT / LD_LIBRARY_PATH load a library into every program; DYLD_* on macOS;
    // glibc loads iconv modules from GCONV_PATH; OpenSSL loads the config, engines and providers named.
    why: "the dynamic loader, glibc and OpenSSL load the shared libraries or settings it names into the programs the deploy starts",
    names: ["LD_*", "DYLD_*", "GCONV_PATH", "GLIBC_TUNABLES", "OPENSSL_CONF", "OPENSSL_ENGINES", "OPENSSL_MODULES"],
  },
  {
    // BASH_ENV is sourced before a bash script runs, ENV by sh -i; PS4 is expanded (command
    // substitutions included) on every line a `set -x` script traces; SHELLOPTS/BASHOPTS turn such
    // options on; IFS/CDPATH/GLOBIGNORE change how words, cd and globs resolve; FPATH/ZDOTDIR are
    // where ksh/zsh read functions and startup files; SHELL is the shell some tools start.
    // Exported bash functions travel as BASH_FUNC_name%%, which the name check already refuses; the
    // prefix stays so this rule does not depend on it.
    why: "shells read startup files, functions, options or command text from it",
    names: ["BASH_ENV", "ENV", "BASH_FUNC_*", "SHELLOPTS", "BASHOPTS", "PS4", "IFS", "CDPATH", "GLOBIGNORE", "FPATH", "ZDOTDIR", "SHELL"],
  },
  {
    // PATH picks the program behind every command name; HOME and XDG_CONFIG_* are where git, ssh,
    // npm, docker and the shells find ~/.gitconfig, ~/.ssh/config, ~/.npmrc, ~/.docker/config.json,
    // ~/.bash_profile — files that can name programs to run (core.fsmonitor, ProxyCommand...).
    why: "it chooses which program a command name runs, or where git, ssh, npm, docker and the shells read their configuration (which can name programs to run)",
    names: ["PATH", "HOME", "XDG_CONFIG_HOME", "XDG_CONFIG_DIRS"],
  },
  {
    // NODE_OPTIONS=--require/--import, PERL5OPT=-M, RUBYOPT=-r, JAVA_TOOL_OPTIONS=-javaagent, ERL_FLAGS=-eval,
    // LUA_INIT=code, PHPRC's auto_prepend_file, .NET startup hooks and CLR profilers, R profiles; module
    // search paths (NODE_PATH, PYTHONPATH, PERL5LIB, RUBYLIB, CLASSPATH, PYTHONUSERBASE's .pth files);
    // JAVA_HOME picks the java that Maven/Gradle wrappers run. A PYTHONWARNINGS category imports a module,
    // and BROWSER is the program Python's webbrowser module starts (together a known code-execution chain).
    why: "an interpreter or runtime loads the code, modules or agents it names, or takes command-line options from it",
    names: [
      "NODE_OPTIONS",
      "NODE_PATH",
      "PYTHONPATH",
      "PYTHONHOME",
      "PYTHONSTARTUP",
      "PYTHONINSPECT",
      "PYTHONUSERBASE",
      "PYTHONBREAKPOINT",
      "PYTHONWARNINGS",
      "BROWSER",
      "PERL5OPT",
      "PERL5LIB",
      "PERLLIB",
      "PERL5DB",
      "RUBYOPT",
      "RUBYLIB",
      "JAVA_TOOL_OPTIONS",
      "_JAVA_OPTIONS",
      "JDK_JAVA_OPTIONS",
      "JAVA_OPTS",
      "JAVA_HOME",
      "CLASSPATH",
      "PHPRC",
      "PHP_INI_SCAN_DIR",
      "LUA_INIT*",
      "LUA_PATH*",
      "LUA_CPATH*",
      "ERL_FLAGS",
      "ERL_AFLAGS",
      "ERL_ZFLAGS",
      "DOTNET_STARTUP_HOOKS",
      "CORECLR_*",
      "R_PROFILE",
      "R_PROFILE_USER",
    ],
  },
  {
    // A package source of the caller's choosing installs code that runs (install and build scripts);
    // yarn's yarnPath, GOFLAGS=-toolexec, GOCACHEPROG, MAKEFLAGS=--eval, MAKEOVERRIDES (sub-makes take
    // it as command-line variables, which beat the Makefile's own), MAVEN_ARGS goals, MAVEN_CONFIG
    // (mvnw's arguments), MAVEN_DEBUG_OPTS (JVM options: -XX:OnOutOfMemoryError runs a command),
    // MVNW_REPOURL (where the wrapper downloads Maven from), JAVACMD (the java bin/mvn and ant run),
    // ANT_OPTS/ANT_ARGS/ANT_HOME and SBT_OPTS alike, GRADLE_USER_HOME init scripts, Cargo's target
    // runners and RUSTC_WRAPPER run commands directly; pkg-config-rs takes the pkg-config program from
    // TARGET_/HOST_PKG_CONFIG. CMake reads its toolchain file (CMake code), compiler launchers and
    // package search paths from CMAKE_* variables. Yarn, pip, Bundler and Cargo map any setting to a
    // prefixed variable, so their whole prefixes are refused.
    why: "a package manager or build tool takes its package source, configuration, flags or toolchain from it, and those decide what code the build runs",
    names: [
      "YARN_*",
      "COREPACK_NPM_REGISTRY",
      "COREPACK_HOME",
      "PIP_*",
      "UV_*",
      "PIPENV_*",
      "POETRY_*",
      "BUN_*",
      "PKG_CONFIG*",
      "TARGET_PKG_CONFIG*",
      "HOST_PKG_CONFIG*",
      "CCACHE_*",
      "GEM_HOME",
      "GEM_PATH",
      "BUNDLE_*",
      "COMPOSER",
      "COMPOSER_HOME",
      "GOFLAGS",
      "GOPROXY",
      "GONOPROXY",
      "GOSUMDB",
      "GONOSUMDB",
      "GONOSUMCHECK",
      "GOPRIVATE",
      "GOINSECURE",
      "GOTOOLCHAIN",
      "GOAUTH",
      "GOENV",
      "GOROOT",
      "GOCACHEPROG",
      "CARGO_*",
      "RUSTC*",
      "RUSTDOC*",
      "RUSTFLAGS",
      "RUSTUP_*",
      "MAKEFLAGS",
      "GNUMAKEFLAGS",
      "MFLAGS",
      "MAKEFILES",
      "MAKEOVERRIDES",
      "CMAKE_*",
      "MAVEN_*",
      "MVNW_*",
      "M2_HOME",
      "JAVACMD",
      "ANT_*",
      "SBT_*",
      "GRADLE_OPTS",
      "GRADLE_USER_HOME",
    ],
  },
  {
    // npm (and pnpm, which reads npm's settings) takes any setting from npm_config_<name> in any case:
    // script-shell, node-options, registry, userconfig...
    why: "npm and pnpm read any of their settings from it (script-shell, node-options, registry, userconfig), in any letter case",
    names: ["npm_config_*", "pnpm_config_*"],
    anyCase: true,
  },
  {
    // gcc's -wrapper runs a program, -fplugin loads one; CC/LD/AR... are the programs make, cgo,
    // node-gyp and configure scripts run (configure also evals CC, the flags and LIBS as shell text).
    // Rust's cc crate reads each tool and flag variable also as <NAME>_<target> (CC_x86_64_unknown_linux_gnu),
    // TARGET_<NAME> and HOST_<NAME>; the target can be any name, so those are prefixes.
    why: "it names the compiler, linker, assembler or other toolchain program a build runs, or passes flags that make the compiler run or load other programs",
    names: [
      "CC",
      "CC_*",
      "TARGET_CC",
      "HOST_CC",
      "CXX",
      "CXX_*",
      "TARGET_CXX",
      "HOST_CXX",
      "CPP",
      "LD",
      "AR",
      "AR_*",
      "TARGET_AR",
      "HOST_AR",
      "AS",
      "RANLIB*",
      "TARGET_RANLIB*",
      "HOST_RANLIB*",
      "NM",
      "STRIP",
      "OBJCOPY",
      "OBJDUMP",
      "CFLAGS",
      "CFLAGS_*",
      "TARGET_CFLAGS",
      "HOST_CFLAGS",
      "CXXFLAGS",
      "CXXFLAGS_*",
      "TARGET_CXXFLAGS",
      "HOST_CXXFLAGS",
      "ARFLAGS*",
      "TARGET_ARFLAGS",
      "HOST_ARFLAGS",
      "CPPFLAGS",
      "LDFLAGS",
      "LIBS",
      "CGO_CFLAGS",
      "CGO_CPPFLAGS",
      "CGO_CXXFLAGS",
      "CGO_FFLAGS",
      "CGO_LDFLAGS",
    ],
  },
  {
    // `make -p -f /dev/null` lists them: RM='echo x;' turns a Makefile's `$(RM) build` into a command of
    // the caller's, MAKE (and MAKE_COMMAND, which it expands to) does the same to every recursive
    // `$(MAKE)`, TARGET_ARCH='; cmd;' to the built-in C rule. Make's composite variables (LINK.c,
    // COMPILE.c...) contain a dot, which no env_overrides name can. CC, AR, the C flags... are above.
    why: "GNU make takes it from the environment and pastes it into the shell commands of its built-in rules and of Makefiles that use it ($(RM), $(MAKE)), so its value runs as part of a command",
    names: [
      "MAKE",
      "MAKE_COMMAND",
      "RM",
      "FC",
      "F77",
      "PC",
      "OBJC",
      "LEX",
      "YACC",
      "LINT",
      "M2C",
      "CO",
      "GET",
      "MAKEINFO",
      "TEX",
      "TEXI2DVI",
      "WEAVE",
      "CWEAVE",
      "TANGLE",
      "CTANGLE",
      "ASFLAGS",
      "FFLAGS",
      "F77FLAGS",
      "RFLAGS",
      "PFLAGS",
      "OBJCFLAGS",
      "LFLAGS",
      "YFLAGS",
      "M2FLAGS",
      "DEFFLAGS",
      "MODFLAGS",
      "LINTFLAGS",
      "COFLAGS",
      "GFLAGS",
      "MAKEINFO_FLAGS",
      "TEXI2DVI_FLAGS",
      "LDLIBS",
      "LOADLIBES",
      "TARGET_ARCH",
      "TARGET_MACH",
      "OUTPUT_OPTION",
      "SCCS_OUTPUT_OPTION",
    ],
  },
  {
    // TAR_OPTIONS is prepended to tar's command line: --to-command=, --checkpoint-action=exec=,
    // --use-compress-program= and --info-script= run programs. RSYNC_RSH is the remote shell rsync
    // starts (like -e); RSYNC_CONNECT_PROG is a command rsync runs for rsync:// daemon connections,
    // with the shell RSYNC_SHELL names.
    why: "GNU tar takes command-line options from it (which can run programs: --to-command, --checkpoint-action=exec), or rsync the remote shell or connection command it starts",
    names: ["TAR_OPTIONS", "RSYNC_RSH", "RSYNC_CONNECT_PROG", "RSYNC_SHELL"],
  },
  {
    // GIT_CONFIG_COUNT/KEY_n/VALUE_n and GIT_CONFIG_PARAMETERS set any option (core.fsmonitor,
    // core.sshCommand, alias.* are commands); GIT_SSH_COMMAND, GIT_ASKPASS, GIT_EXEC_PATH,
    // GIT_EXTERNAL_DIFF, GIT_EDITOR, GIT_PAGER are programs; GIT_DIR/GIT_TEMPLATE_DIR pick hooks.
    // Git reads dozens more, so the whole prefix is refused.
    why: "git reads its configuration, repository, hooks and helper programs from GIT_* variables (GIT_CONFIG_* alone can set core.fsmonitor, a command)",
    names: ["GIT_*"],
  },
  {
    why: "it names a program that ssh, sudo, git, less, man, systemctl or crontab start to ask for a password, page output or edit a file",
    names: ["SSH_ASKPASS", "SSH_ASKPASS_REQUIRE", "SUDO_ASKPASS", "PAGER", "MANPAGER", "SYSTEMD_PAGER", "LESSOPEN", "LESSCLOSE", "EDITOR", "VISUAL", "SUDO_EDITOR", "SYSTEMD_EDITOR"],
  },
  {
    // Another engine (DOCKER_HOST=ssh://... also runs ssh) receives the deploy's registry credentials and
    // decides what runs; DOCKER_CONFIG holds credential helpers and cli-plugins, which are programs;
    // COMPOSE_FILE names the compose file (recent compose versions accept remote ones), i.e. the
    // containers and host mounts; KUBECONFIG's exec credential plugins are programs.
    why: "it chooses the Docker engine or cluster the deploy's docker, compose or kubectl commands use, or their configuration, which names programs and containers to run",
    names: ["DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", "COMPOSE_FILE", "KUBECONFIG"],
  },
  {
    // A download that can be altered in transit is code that runs: install scripts, images, curl | sh.
    // Python reads *_proxy in any case; curl and others read lower and upper case. rsync:// transfers
    // (plain text) go through RSYNC_PROXY.
    why: "it sends the deploy's downloads through a host of the caller's choosing, where what is downloaded (packages, scripts) can be replaced",
    names: ["http_proxy", "https_proxy", "all_proxy", "ftp_proxy", "RSYNC_PROXY"],
    anyCase: true,
  },
  {
    // The AWS CLI and SDKs take their service endpoints from these: `aws s3 cp` of a release artifact
    // would fetch the caller's file instead.
    why: "it sends the deploy's downloads through a host of the caller's choosing, where what is downloaded (packages, scripts) can be replaced",
    names: ["AWS_ENDPOINT_URL*"],
  },
  {
    // curl reads .curlrc from CURL_HOME (before XDG_CONFIG_HOME and HOME, refused above), wget its
    // startup files from WGETRC and SYSTEM_WGETRC: a config there can set --insecure/check_certificate=off,
    // a proxy, or where downloads are written.
    why: "curl or wget reads its configuration from where it points, and that configuration can turn off certificate checks, send downloads through a proxy or write them over other files, so what is downloaded (packages, scripts) can be replaced",
    names: ["CURL_HOME", "WGETRC", "SYSTEM_WGETRC"],
  },
  {
    why: "it changes which TLS certificates the deploy's downloads trust, so what is downloaded (packages, scripts) can be replaced in transit",
    names: ["NODE_TLS_REJECT_UNAUTHORIZED", "NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "PYTHONHTTPSVERIFY"],
  },
];

/** Whether `name` matches `entry`: the exact name, or a prefix when the entry ends in `*`. */
export function envNameMatches(entry: string, name: string, anyCase = false): boolean {
  const [e, n] = anyCase ? [entry.toLowerCase(), name.toLowerCase()] : [entry, name];
  return e.endsWith("*") ? n.startsWith(e.slice(0, -1)) : n === e;
}

/** Why a deploy refuses `name` as an override by default, or null when it does not. */
export function refusedDeployEnvReason(name: string): string | null {
  for (const group of REFUSED_DEPLOY_ENV) {
    if (group.names.some((entry) => envNameMatches(entry, name, group.anyCase))) return group.why;
  }
  return null;
}
