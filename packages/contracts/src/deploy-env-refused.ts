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
 * (sh and bash, git, ssh, docker and podman, systemctl, kubectl, helm,
 * ansible, terraform, the cloud CLIs, node and its package managers, python,
 * ruby, perl, java, php, go, rust, make, cmake, C compilers, tar, rsync, curl,
 * wget) and cannot know every program on every server, nor every variable a
 * program will read in its next release: it is not a guarantee. An application
 * whose deploy key goes to CI should set `allowed_env_overrides`, which accepts
 * only the names it lists; that is the only guarantee.
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
    // glibc loads iconv modules from GCONV_PATH; OpenSSL loads the config, engines and providers named;
    // ssh-add, ssh-keygen and ssh load the FIDO middleware library SSH_SK_PROVIDER names.
    why: "the dynamic loader, glibc, OpenSSL and ssh load the shared libraries or settings it names into the programs the deploy starts",
    names: ["LD_*", "DYLD_*", "GCONV_PATH", "GLIBC_TUNABLES", "OPENSSL_CONF", "OPENSSL_ENGINES", "OPENSSL_MODULES", "SSH_SK_PROVIDER"],
  },
  {
    // BASH_ENV is sourced before a bash script runs, ENV by sh -i; PS4 is expanded (command
    // substitutions included) on every line a `set -x` script traces; SHELLOPTS/BASHOPTS turn such
    // options on; IFS/CDPATH/GLOBIGNORE change how words, cd and globs resolve; FPATH/ZDOTDIR are
    // where ksh/zsh read functions and startup files; SHELL is the shell some tools start;
    // BASH_LOADABLES_PATH is where `enable -f` loads builtins (shared objects) from.
    // Exported bash functions travel as BASH_FUNC_name%%, which the name check already refuses; the
    // prefix stays so this rule does not depend on it.
    why: "shells read startup files, functions, options or command text from it",
    names: ["BASH_ENV", "ENV", "BASH_FUNC_*", "SHELLOPTS", "BASHOPTS", "PS4", "IFS", "CDPATH", "GLOBIGNORE", "FPATH", "ZDOTDIR", "SHELL", "BASH_LOADABLES_PATH"],
  },
  {
    // PATH picks the program behind every command name; HOME and XDG_CONFIG_* are where git, ssh,
    // npm, docker and the shells find ~/.gitconfig, ~/.ssh/config, ~/.npmrc, ~/.docker/config.json,
    // ~/.bash_profile — files that can name programs to run (core.fsmonitor, ProxyCommand...).
    // XDG_DATA_* and XDG_CACHE_HOME hold helm's plugins, systemd's user units, podman's images and the
    // package managers corepack runs; GNUPGHOME is gpg's (git's signature checks) keyring and
    // gpg-agent.conf, whose pinentry-program is a program.
    why: "it chooses which program a command name runs, or where git, ssh, npm, docker, gpg and the shells read their configuration, plugins or cached downloads (which can name programs to run, or be them)",
    names: ["PATH", "HOME", "XDG_CONFIG_HOME", "XDG_CONFIG_DIRS", "XDG_DATA_HOME", "XDG_DATA_DIRS", "XDG_CACHE_HOME", "GNUPGHOME"],
  },
  {
    // NODE_OPTIONS=--require/--import, PERL5OPT=-M, RUBYOPT=-r, JAVA_TOOL_OPTIONS=-javaagent, ERL_FLAGS=-eval,
    // LUA_INIT=code, PHPRC's auto_prepend_file, .NET startup hooks and CLR profilers, R profiles; module
    // search paths (NODE_PATH, PYTHONPATH, PERL5LIB, RUBYLIB, CLASSPATH, PYTHONUSERBASE's .pth files);
    // JAVA_HOME picks the java that Maven/Gradle wrappers run. A PYTHONWARNINGS category imports a module,
    // and BROWSER is the program Python's webbrowser module starts (together a known code-execution chain).
    // PYTHONPYCACHEPREFIX and PYTHONPLATLIBDIR move where Python reads bytecode and modules from;
    // NODE_REPL_EXTERNAL_MODULE is loaded in place of node's REPL; JDK_JAVAC_OPTIONS is prepended to
    // javac's arguments (-processorpath: annotation processors are code javac runs).
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
      "PYTHONPYCACHEPREFIX",
      "PYTHONPLATLIBDIR",
      "BROWSER",
      "NODE_REPL_EXTERNAL_MODULE",
      "PERL5OPT",
      "PERL5LIB",
      "PERLLIB",
      "PERL5DB",
      "RUBYOPT",
      "RUBYLIB",
      "JAVA_TOOL_OPTIONS",
      "_JAVA_OPTIONS",
      "JDK_JAVA_OPTIONS",
      "JDK_JAVAC_OPTIONS",
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
    // prefixed variable, so their whole prefixes are refused, as are Corepack's (COREPACK_INTEGRITY_KEYS=0
    // turns off its signature check), Composer's (COMPOSER_AUTH, COMPOSER_CAFILE...), conda's and pipx's.
    // VIRTUAL_ENV is the environment (and python) uv and Poetry use; GEMRC is RubyGems' configuration
    // (its sources); PERL_CPANM_OPT, PERL_MM_OPT and PERL_MB_OPT are cpanm's and Perl's build tools'
    // arguments (--mirror). GOWORK replaces modules with directories elsewhere; GOMODCACHE, GOCACHE and
    // GOPATH are where go takes downloaded modules and compiled packages from without checking them
    // again. distcc and sccache send compilations to, or take compiled objects from, the hosts they name.
    why: "a package manager or build tool takes its package source, configuration, flags or toolchain from it, and those decide what code the build runs",
    names: [
      "YARN_*",
      "COREPACK_*",
      "PIP_*",
      "UV_*",
      "PIPENV_*",
      "POETRY_*",
      "PIPX_*",
      "CONDA_*",
      "VIRTUAL_ENV",
      "BUN_*",
      "PKG_CONFIG*",
      "TARGET_PKG_CONFIG*",
      "HOST_PKG_CONFIG*",
      "CCACHE_*",
      "DISTCC_*",
      "SCCACHE_*",
      "GEM_HOME",
      "GEM_PATH",
      "GEMRC",
      "BUNDLE_*",
      "COMPOSER",
      "COMPOSER_*",
      "PERL_CPANM_OPT",
      "PERL_MM_OPT",
      "PERL_MB_OPT",
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
      "GOWORK",
      "GOMODCACHE",
      "GOCACHE",
      "GOPATH",
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
    // TARGET_<NAME> and HOST_<NAME>; the target can be any name, so those are prefixes. CMake takes
    // each language's compiler and flags from its own variable (ASM<dialect>, CUDACXX, HIPCXX, OBJCXX,
    // ISPC, RC, SWIFTC...).
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
      "ASM",
      "ASM_*",
      "ASMFLAGS",
      "CUDACXX",
      "CUDAHOSTCXX",
      "CUDAFLAGS",
      "HIPCXX",
      "HIPHOSTCXX",
      "HIPFLAGS",
      "OBJCXX",
      "OBJCXXFLAGS",
      "ISPC",
      "ISPCFLAGS",
      "RC",
      "RCFLAGS",
      "SWIFTC",
      "CSFLAGS",
    ],
  },
  {
    // Verified end to end by a review: DEPENDENCIES_OUTPUT="/root/.ssh/authorized_keys <key>" made a
    // deploy's `cc -c x.c` append "<key>: x.c" to that file (SUNPRO_DEPENDENCIES alike). COMPILER_PATH
    // and GCC_EXEC_PREFIX are where gcc finds cc1, as and collect2 (programs); GCC_COMPARE_DEBUG's value
    // is options for a second compilation (-fplugin= loads a shared object); CCC_OVERRIDE_OPTIONS edits
    // clang's command line; CPATH and the *_INCLUDE_PATH / LIBRARY_PATH directories are searched for
    // headers and libraries before the system's, so their code is built into what the deploy runs.
    why: "the C compiler (gcc, cpp, clang) runs its subprograms or plugins from it, edits its own command line with it, takes headers and libraries from where it points, or writes its dependency list to the file it names (a line of the caller's choosing appended to any file)",
    names: [
      "DEPENDENCIES_OUTPUT",
      "SUNPRO_DEPENDENCIES",
      "COMPILER_PATH",
      "GCC_EXEC_PREFIX",
      "GCC_COMPARE_DEBUG",
      "CCC_OVERRIDE_OPTIONS",
      "CPATH",
      "C_INCLUDE_PATH",
      "CPLUS_INCLUDE_PATH",
      "OBJC_INCLUDE_PATH",
      "LIBRARY_PATH",
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
    why: "it names a program that ssh, sudo, git, less, man, systemctl, crontab or kubectl start to ask for a password, page output, show a diff or edit a file",
    names: [
      "SSH_ASKPASS",
      "SSH_ASKPASS_REQUIRE",
      "SUDO_ASKPASS",
      "PAGER",
      "MANPAGER",
      "SYSTEMD_PAGER",
      "LESSOPEN",
      "LESSCLOSE",
      "EDITOR",
      "VISUAL",
      "SUDO_EDITOR",
      "SYSTEMD_EDITOR",
      "KUBE_EDITOR",
      "KUBECTL_EXTERNAL_DIFF",
    ],
  },
  {
    // Another engine (DOCKER_HOST=ssh://... also runs ssh) receives the deploy's registry credentials and
    // decides what runs; DOCKER_CONFIG holds credential helpers and cli-plugins, which are programs;
    // COMPOSE_FILE names the compose file (recent compose versions accept remote ones), i.e. the
    // containers and host mounts; KUBECONFIG's exec credential plugins are programs, KUBERC's aliases
    // and defaults rewrite kubectl's command lines. Podman takes its service from CONTAINER_HOST /
    // CONTAINER_CONNECTION (podman's DOCKER_HOST), its engine, registry and storage configuration from
    // CONTAINERS_*_CONF (storage options name a mount program), its credentials from REGISTRY_AUTH_FILE;
    // BUILDKIT_HOST and BUILDX_CONFIG pick the builder. Helm maps each setting to HELM_*: the API server
    // (HELM_KUBEAPISERVER, HELM_KUBEINSECURE_SKIP_TLS_VERIFY), plugins (programs), repositories.
    why: "it chooses the Docker engine, Podman service, BuildKit builder or Kubernetes cluster the deploy's docker, podman, compose, kubectl or helm commands use, or their configuration, plugins or credentials, which name programs and containers to run",
    names: [
      "DOCKER_HOST",
      "DOCKER_CONTEXT",
      "DOCKER_CONFIG",
      "DOCKER_CERT_PATH",
      "DOCKER_TLS_VERIFY",
      "DOCKER_CONTENT_TRUST_SERVER",
      "COMPOSE_FILE",
      "KUBECONFIG",
      "KUBERC",
      "CONTAINER_HOST",
      "CONTAINER_CONNECTION",
      "CONTAINER_SSHKEY",
      "CONTAINERS_*",
      "PODMAN_CONNECTIONS_CONF",
      "REGISTRY_AUTH_FILE",
      "STORAGE_OPTS",
      "BUILDKIT_HOST",
      "BUILDX_CONFIG",
      "HELM_*",
    ],
  },
  {
    // Verified end to end by a review: DBUS_SESSION_BUS_ADDRESS=unixexec:path=/bin/sh,argv1=-c,argv2=...
    // made a deploy's `systemctl --user restart x` (sd-bus, as libdbus and GIO) run that program as the
    // runner's account. sd-bus falls back to $XDG_RUNTIME_DIR/bus (and systemd/private) for the user
    // bus; SSH_AUTH_SOCK is the agent ssh and git sign in with. systemd's tools read dozens of
    // SYSTEMD_* / SYSTEMCTL_* variables (SYSTEMD_OFFLINE, SYSTEMD_UNIT_PATH, program paths), so the
    // whole prefixes are refused.
    why: "it chooses the D-Bus bus, agent socket or runtime directory that systemctl, busctl, ssh and other clients connect to, or how systemd's tools behave, and a D-Bus address can be a program to start (unixexec:path=…)",
    names: ["DBUS_*", "XDG_RUNTIME_DIR", "SSH_AUTH_SOCK", "SYSTEMD_*", "SYSTEMCTL_*"],
  },
  {
    // ANSIBLE_<SETTING> sets any Ansible setting: ANSIBLE_SSH_ARGS (-o ProxyCommand=...), module and
    // plugin paths, ANSIBLE_VAULT_PASSWORD_FILE (an executable one is run), ANSIBLE_CONFIG. Terraform
    // reads its CLI configuration (provider installation sources) from TF_CLI_CONFIG_FILE, extra
    // arguments from TF_CLI_ARGS(_<command>), providers from TF_PLUGIN_CACHE_DIR and TF_DATA_DIR. An AWS
    // config file can hold credential_process (a command); gcloud maps each property to CLOUDSDK_*
    // (CLOUDSDK_CONFIG, CLOUDSDK_PYTHON: the interpreter it runs); AZURE_CONFIG_DIR is az's.
    why: "Ansible, Terraform or a cloud CLI (aws, gcloud, az) reads its settings, configuration, plugins, credentials or extra arguments from it, and those can name programs to run (ssh arguments, provider sources, credential_process)",
    names: [
      "ANSIBLE_*",
      "TF_CLI_CONFIG_FILE",
      "TERRAFORM_CONFIG",
      "TF_CLI_ARGS*",
      "TF_PLUGIN_CACHE_DIR",
      "TF_DATA_DIR",
      "AWS_CONFIG_FILE",
      "AWS_SHARED_CREDENTIALS_FILE",
      "CLOUDSDK_*",
      "AZURE_CONFIG_DIR",
    ],
  },
  {
    // Each makes a program write (or append) where the value says, over any file the runner's account
    // can write: curl's TLS key log and qlog directory, node's coverage, warnings and compile-cache
    // output, Terraform's log, and the install tree `make install` / `cmake --install` write under DESTDIR.
    why: "the program writes a file (a log, coverage or warnings output, TLS session keys, an install tree) where it points, so the deploy writes to a place of the caller's choosing",
    names: ["SSLKEYLOGFILE", "QLOGDIR", "NODE_V8_COVERAGE", "NODE_REDIRECT_WARNINGS", "NODE_COMPILE_CACHE", "TF_LOG_PATH", "DESTDIR"],
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
    names: ["NODE_TLS_REJECT_UNAUTHORIZED", "NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "PYTHONHTTPSVERIFY", "AWS_CA_BUNDLE"],
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
