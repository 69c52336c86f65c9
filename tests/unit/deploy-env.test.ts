import { readFileSync } from "node:fs";
import path from "node:path";
import { REFUSED_DEPLOY_ENV, VALIDATION_OPTIONS, allowedEnvOverridesSchema, deployEnvOverrideRefusal, refusedDeployEnvReason } from "@runbridge/contracts";

/** Which env_overrides a deploy accepts (packages/contracts/src/deploy-env*.ts). */
describe("deploy env_overrides policy", () => {
  const refusal = (names: string[], allowed: string[] | null = null) => deployEnvOverrideRefusal(names, allowed);

  it("refuses by default the names that change how the deploy command's programs start", () => {
    const dangerous = [
      "LD_PRELOAD",
      "LD_LIBRARY_PATH",
      "LD_AUDIT",
      "DYLD_INSERT_LIBRARIES",
      "GCONV_PATH",
      "BASH_ENV",
      "ENV",
      "BASH_FUNC_git",
      "SHELLOPTS",
      "BASHOPTS",
      "PS4",
      "IFS",
      "CDPATH",
      "PATH",
      "HOME",
      "XDG_CONFIG_HOME",
      "NODE_OPTIONS",
      "NODE_PATH",
      "PYTHONPATH",
      "PYTHONHOME",
      "PYTHONWARNINGS",
      "PERL5OPT",
      "PERL5LIB",
      "RUBYOPT",
      "JAVA_TOOL_OPTIONS",
      "_JAVA_OPTIONS",
      "JDK_JAVA_OPTIONS",
      "GIT_CONFIG",
      "GIT_CONFIG_COUNT",
      "GIT_CONFIG_KEY_0",
      "GIT_CONFIG_VALUE_0",
      "GIT_CONFIG_PARAMETERS",
      "GIT_CONFIG_GLOBAL",
      "GIT_SSH",
      "GIT_SSH_COMMAND",
      "GIT_EXEC_PATH",
      "GIT_ASKPASS",
      "GIT_DIR",
      "SSH_ASKPASS",
      "PAGER",
      "EDITOR",
      "VISUAL",
      "DOCKER_HOST",
      "DOCKER_CONFIG",
      "DOCKER_CONTEXT",
      "COMPOSE_FILE",
      "KUBECONFIG",
      "YARN_YARN_PATH",
      "PIP_INDEX_URL",
      // Found by review: each runs or fetches code for a build (Go 1.24's GOAUTH runs a command on every module fetch).
      "GOAUTH",
      "UV_PYTHON_INSTALL_MIRROR",
      "UV_PYTHON_DOWNLOADS_JSON_URL",
      "PIPENV_PYPI_MIRROR",
      "POETRY_REPOSITORIES_PRIVATE_URL",
      "BUN_OPTIONS",
      "BUN_CONFIG_REGISTRY",
      "PKG_CONFIG",
      "PKG_CONFIG_PATH",
      "CCACHE_PREFIX",
      "AWS_ENDPOINT_URL",
      "AWS_ENDPOINT_URL_S3",
      "BUNDLE_GEMFILE",
      "GOFLAGS",
      "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER",
      "RUSTC_WRAPPER",
      "MAKEFLAGS",
      "CC",
      "CFLAGS",
      "HTTPS_PROXY",
      "NODE_TLS_REJECT_UNAUTHORIZED",
      "SSL_CERT_FILE",
      // Found by review: the JVM build tools' launch scripts pass these to java or take them as arguments
      // (-XX:OnOutOfMemoryError runs a command; mvnw downloads Maven from MVNW_REPOURL).
      "MAVEN_DEBUG_OPTS",
      "MAVEN_CONFIG",
      "MVNW_REPOURL",
      "JAVACMD",
      "ANT_OPTS",
      "ANT_ARGS",
      "SBT_OPTS",
    ];
    for (const name of dangerous) {
      expect([name, refusedDeployEnvReason(name)]).toEqual([name, expect.any(String)]);
      expect(refusal(["FEATURE_FLAG", name])).toMatch(new RegExp(`^"env_overrides" key ${name} is refused: `));
    }
  });

  it("names the variable, says why, and says what to do instead", () => {
    const detail = refusal(["GIT_CONFIG_COUNT"]);
    expect(detail).toContain("GIT_CONFIG_COUNT is refused: git reads its configuration");
    expect(detail).toContain("A deploy key may only start the application's deploy command");
    expect(detail).toContain("can pass GIT_CONFIG_COUNT to a command with exec");
    expect(detail).toContain("listing GIT_CONFIG_COUNT in its allowed_env_overrides");
  });

  it("matches case-sensitively, as the environment does, except where the reader ignores case", () => {
    // The loader and shells read exactly LD_PRELOAD and PATH: other spellings are other variables.
    for (const name of ["ld_preload", "path", "Path", "home", "git_config_count"]) expect(refusedDeployEnvReason(name)).toBeNull();
    // npm reads npm_config_* in any case, Python reads *_proxy in any case.
    for (const name of ["npm_config_script_shell", "NPM_CONFIG_SCRIPT_SHELL", "Npm_Config_Node_Options", "pnpm_config_registry", "http_proxy", "HTTP_PROXY", "Https_Proxy", "ALL_PROXY"]) {
      expect([name, refusedDeployEnvReason(name)]).toEqual([name, expect.any(String)]);
    }
  });

  it("accepts ordinary names, including ones that merely start like a refused one", () => {
    const ordinary = ["FEATURE_FLAG", "DEPLOY_TOKEN", "NODE_ENV", "LANG", "LC_ALL", "TZ", "TMPDIR", "NO_PROXY", "GOOS", "CGO_ENABLED", "LDAP_URL", "GITHUB_SHA", "HOMEPAGE_URL", "ENVIRONMENT", "PATHNAME", "CCTV_HOST", "DOCKER_IMAGE_TAG", "ENV_NAME"];
    for (const name of ordinary) expect([name, refusedDeployEnvReason(name)]).toEqual([name, null]);
    expect(refusal(ordinary)).toBeNull();
    expect(refusal([])).toBeNull();
  });

  // Found by review: make pastes its program and flag variables into recipe text run by sh (RM='echo x;'
  // with a recipe `$(RM) x`), TAR_OPTIONS and rsync's variables start programs, Rust's cc crate reads
  // CC_<target>, TARGET_CC..., and curl and wget read their configuration from where these point.
  it("refuses the variables make pastes into its recipes, tar's and rsync's, the cc crate's, and curl's and wget's configuration", () => {
    const groups: [RegExp, string[]][] = [
      [
        /^GNU make takes it from the environment and pastes it into the shell commands of its built-in rules and of Makefiles that use it/,
        [
          ...["RM", "MAKE", "MAKE_COMMAND", "FC", "F77", "PC", "OBJC", "LEX", "YACC", "LINT", "M2C", "CO", "GET", "MAKEINFO", "TEX", "TEXI2DVI", "WEAVE", "CWEAVE", "TANGLE", "CTANGLE"],
          ...["ASFLAGS", "FFLAGS", "YFLAGS", "LFLAGS", "LINTFLAGS", "MAKEINFO_FLAGS", "TEXI2DVI_FLAGS", "LDLIBS", "LOADLIBES", "TARGET_ARCH", "TARGET_MACH", "OUTPUT_OPTION", "SCCS_OUTPUT_OPTION"],
        ],
      ],
      [/^GNU tar takes command-line options from it .*or rsync the remote shell or connection command it starts$/, ["TAR_OPTIONS", "RSYNC_RSH", "RSYNC_CONNECT_PROG", "RSYNC_SHELL"]],
      [
        /^it names the compiler, linker, assembler or other toolchain program a build runs/,
        [
          "CC_x86_64_unknown_linux_gnu",
          "CC_aarch64_unknown_linux_musl",
          "TARGET_CC",
          "HOST_CC",
          "CXX_x86_64_unknown_linux_gnu",
          "TARGET_CXX",
          "HOST_CXX",
          "CFLAGS_x86_64_unknown_linux_gnu",
          "TARGET_CFLAGS",
          "HOST_CFLAGS",
          "CXXFLAGS_x86_64_unknown_linux_gnu",
          "TARGET_CXXFLAGS",
          "HOST_CXXFLAGS",
          "AR_x86_64_unknown_linux_gnu",
          "TARGET_AR",
          "HOST_AR",
          "ARFLAGS",
          "ARFLAGS_x86_64_unknown_linux_gnu",
          "TARGET_ARFLAGS",
          "RANLIB",
          "RANLIB_x86_64_unknown_linux_gnu",
          "TARGET_RANLIB",
          "NM",
          "STRIP",
          "OBJCOPY",
          "OBJDUMP",
          "LIBS",
        ],
      ],
      [/^a package manager or build tool takes its package source/, ["MAKEOVERRIDES", "CMAKE_TOOLCHAIN_FILE", "CMAKE_C_COMPILER_LAUNCHER", "GOCACHEPROG", "TARGET_PKG_CONFIG", "HOST_PKG_CONFIG_PATH"]],
      [/^curl or wget reads its configuration from where it points/, ["CURL_HOME", "WGETRC", "SYSTEM_WGETRC"]],
      [/^it sends the deploy's downloads through a host of the caller's choosing/, ["RSYNC_PROXY"]],
    ];
    for (const [why, names] of groups) {
      for (const name of names) {
        expect([name, refusedDeployEnvReason(name)]).toEqual([name, expect.stringMatching(why)]);
        expect(refusal(["RELEASE_TAG", name])).toMatch(new RegExp(`^"env_overrides" key ${name} is refused: `));
      }
    }
    // Make's composite variables (LINK.c, COMPILE.cc) cannot be passed at all: no env_overrides name has a dot.
  });

  it("still accepts ordinary names next to the make, tar, rsync and cc crate ones", () => {
    const ordinary = ["NODE_ENV", "RELEASE_TAG", "FEATURE_SEARCH", "LOG_LEVEL", "TARGET", "TARGET_ENV", "HOST_NAME", "MAKE_TARGET", "RMQ_URL", "TAR_FILE", "RSYNC_PASSWORD", "CURL_TIMEOUT", "ARCH", "LIBSODIUM_VERSION"];
    for (const name of ordinary) expect([name, refusedDeployEnvReason(name)]).toEqual([name, null]);
    expect(refusal(ordinary)).toBeNull();
  });

  // Found by review: gcc's DEPENDENCIES_OUTPUT appended a line of the caller's to any file, and a D-Bus
  // unixexec: address made `systemctl --user` run a program (both verified on a real stack); the rest are
  // their siblings in the programs deploy commands run: podman, helm, ansible, terraform, the cloud CLIs...
  it("refuses the C compiler's, D-Bus's, podman's, helm's, ansible's, terraform's and the cloud CLIs' variables, and those that write files", () => {
    const groups: [RegExp, string[]][] = [
      [
        /^the C compiler \(gcc, cpp, clang\) runs its subprograms or plugins from it, .*writes its dependency list to the file it names/,
        ["DEPENDENCIES_OUTPUT", "SUNPRO_DEPENDENCIES", "COMPILER_PATH", "GCC_EXEC_PREFIX", "GCC_COMPARE_DEBUG", "CCC_OVERRIDE_OPTIONS", "CPATH", "C_INCLUDE_PATH", "CPLUS_INCLUDE_PATH", "OBJC_INCLUDE_PATH", "LIBRARY_PATH"],
      ],
      [
        /^it chooses the D-Bus bus, agent socket or runtime directory .*a D-Bus address can be a program to start/,
        ["DBUS_SESSION_BUS_ADDRESS", "DBUS_SYSTEM_BUS_ADDRESS", "DBUS_STARTER_ADDRESS", "XDG_RUNTIME_DIR", "SSH_AUTH_SOCK", "SYSTEMD_OFFLINE", "SYSTEMD_UNIT_PATH", "SYSTEMCTL_FORCE_BUS"],
      ],
      [
        /^it chooses the Docker engine, Podman service, BuildKit builder or Kubernetes cluster/,
        [
          ...["CONTAINER_HOST", "CONTAINER_CONNECTION", "CONTAINER_SSHKEY", "CONTAINERS_CONF", "CONTAINERS_CONF_OVERRIDE", "CONTAINERS_REGISTRIES_CONF", "CONTAINERS_STORAGE_CONF", "PODMAN_CONNECTIONS_CONF"],
          ...["REGISTRY_AUTH_FILE", "STORAGE_OPTS", "BUILDKIT_HOST", "BUILDX_CONFIG", "DOCKER_CONTENT_TRUST_SERVER", "KUBERC"],
          ...["HELM_KUBEAPISERVER", "HELM_KUBEINSECURE_SKIP_TLS_VERIFY", "HELM_PLUGINS", "HELM_REPOSITORY_CONFIG", "HELM_DATA_HOME"],
        ],
      ],
      [
        /^Ansible, Terraform or a cloud CLI \(aws, gcloud, az\) reads its settings/,
        [
          ...["ANSIBLE_SSH_ARGS", "ANSIBLE_CONFIG", "ANSIBLE_LIBRARY", "ANSIBLE_VAULT_PASSWORD_FILE", "TF_CLI_CONFIG_FILE", "TERRAFORM_CONFIG", "TF_CLI_ARGS", "TF_CLI_ARGS_plan"],
          ...["TF_PLUGIN_CACHE_DIR", "TF_DATA_DIR", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "CLOUDSDK_CONFIG", "CLOUDSDK_PYTHON", "AZURE_CONFIG_DIR"],
        ],
      ],
      [/^the program writes a file .* where it points/, ["SSLKEYLOGFILE", "QLOGDIR", "NODE_V8_COVERAGE", "NODE_REDIRECT_WARNINGS", "NODE_COMPILE_CACHE", "TF_LOG_PATH", "DESTDIR"]],
      [/^it names a program that .*kubectl start to .*show a diff/, ["KUBECTL_EXTERNAL_DIFF", "KUBE_EDITOR"]],
      [/^it chooses which program a command name runs, or where .*plugins or cached downloads/, ["XDG_DATA_HOME", "XDG_DATA_DIRS", "XDG_CACHE_HOME", "GNUPGHOME"]],
      [/^the dynamic loader, glibc, OpenSSL and ssh load the shared libraries/, ["SSH_SK_PROVIDER"]],
      [/^shells read startup files/, ["BASH_LOADABLES_PATH"]],
      [/^an interpreter or runtime loads the code/, ["PYTHONPYCACHEPREFIX", "PYTHONPLATLIBDIR", "NODE_REPL_EXTERNAL_MODULE", "JDK_JAVAC_OPTIONS"]],
      [
        /^a package manager or build tool takes its package source/,
        [
          ...["COREPACK_INTEGRITY_KEYS", "COREPACK_ENABLE_UNSAFE_CUSTOM_URLS", "COMPOSER_AUTH", "COMPOSER_CAFILE", "CONDA_CHANNELS", "PIPX_DEFAULT_PYTHON", "VIRTUAL_ENV", "GEMRC"],
          ...["PERL_CPANM_OPT", "PERL_MM_OPT", "PERL_MB_OPT", "GOWORK", "GOMODCACHE", "GOCACHE", "GOPATH", "DISTCC_HOSTS", "SCCACHE_ENDPOINT"],
        ],
      ],
      [/^it names the compiler, linker, assembler or other toolchain program a build runs/, ["ASM", "ASM_NASM", "ASMFLAGS", "CUDACXX", "CUDAHOSTCXX", "HIPCXX", "OBJCXX", "ISPC", "RC", "SWIFTC", "CUDAFLAGS"]],
      [/^it changes which TLS certificates the deploy's downloads trust/, ["AWS_CA_BUNDLE"]],
    ];
    for (const [why, names] of groups) {
      for (const name of names) {
        expect([name, refusedDeployEnvReason(name)]).toEqual([name, expect.stringMatching(why)]);
        expect(refusal(["RELEASE_TAG", name])).toMatch(new RegExp(`^"env_overrides" key ${name} is refused: `));
      }
    }
    // The ordinary names next to them still pass.
    const ordinary = ["AWS_REGION", "TF_VAR_image_tag", "TF_WORKSPACE_NAME", "CONTAINER_NAME", "HELMFILE_ENV", "DBUSER", "GCC_VERSION", "SYSTEM_NAME", "ANSIBLE", "DESTINATION", "ASSET_HOST", "GO_VERSION"];
    for (const name of ordinary) expect([name, refusedDeployEnvReason(name)]).toEqual([name, null]);
    expect(refusal(ordinary)).toBeNull();
  });

  it("refuses RUNBRIDGE_* in any case, even when the application lists it", () => {
    expect(refusal(["RUNBRIDGE_COMMIT_REF"])).toBe('"env_overrides" key RUNBRIDGE_COMMIT_REF is reserved: RUNBRIDGE_* variables are set by the platform');
    expect(refusal(["runbridge_commit_ref"])).toMatch(/runbridge_commit_ref is reserved/);
    expect(refusal(["RUNBRIDGE_X"], ["RUNBRIDGE_X", "R*"])).toMatch(/RUNBRIDGE_X is reserved/);
  });

  describe("with the application's allowed_env_overrides", () => {
    it("accepts exact names and prefix patterns, and nothing else", () => {
      const allowed = ["LOG_LEVEL", "FEATURE_*"];
      expect(refusal(["LOG_LEVEL", "FEATURE_", "FEATURE_SEARCH"], allowed)).toBeNull();
      expect(refusal(["LOG_LEVEL", "NODE_ENV"], allowed)).toBe('"env_overrides" key NODE_ENV is not in the application\'s allowed_env_overrides');
      // Exact and case-sensitive: a longer name or another case is another variable.
      expect(refusal(["LOG_LEVELS"], allowed)).toMatch(/LOG_LEVELS is not in/);
      expect(refusal(["log_level"], allowed)).toMatch(/log_level is not in/);
      expect(refusal(["FEATURE"], allowed)).toMatch(/FEATURE is not in/);
    });

    it("takes no overrides at all when the list is empty", () => {
      expect(refusal([], [])).toBeNull();
      expect(refusal(["FEATURE_FLAG"], [])).toBe(
        '"env_overrides" key FEATURE_FLAG is not in the application\'s allowed_env_overrides (the list is empty: this application takes no overrides)',
      );
    });

    it("lets an exact entry lift the default refusal, but never a pattern", () => {
      expect(refusal(["GIT_SSH_COMMAND", "PATH"], ["GIT_SSH_COMMAND", "PATH"])).toBeNull();
      const detail = refusal(["GIT_SSH_COMMAND"], ["GIT_*"]);
      expect(detail).toMatch(/^"env_overrides" key GIT_SSH_COMMAND matches GIT_\* in the application's allowed_env_overrides but is refused: git reads/);
      expect(detail).toMatch(/Only the exact name GIT_SSH_COMMAND in allowed_env_overrides allows it$/);
      expect(refusal(["GIT_SSH_COMMAND"], ["GIT_*", "GIT_SSH_COMMAND"])).toBeNull();
      // An exact entry lifts the refusal of that name only.
      expect(refusal(["LD_PRELOAD"], ["LD_LIBRARY_PATH"])).toMatch(/LD_PRELOAD is not in/);
    });
  });

  describe("allowed_env_overrides schema", () => {
    // Validated on its own, an entry's label is its index ("[1]"); in a request body it is "allowed_env_overrides[1]".
    const validate = (value: unknown) => allowedEnvOverridesSchema().label("allowed_env_overrides").validate(value, VALIDATION_OPTIONS);

    it("takes null, an empty list, names and prefix patterns", () => {
      for (const value of [null, [], ["LOG_LEVEL"], ["FEATURE_*", "_X", "A1", "PATH", "GIT_SSH_COMMAND"]]) expect(validate(value).error).toBeUndefined();
      expect(validate(Array.from({ length: 200 }, (_, i) => `K${i}`)).error).toBeUndefined();
    });

    it("refuses bad entries naming the entry", () => {
      for (const [value, detail] of [
        [["1BAD"], /^"\[0\]" must be a variable name/],
        [["OK", "has space"], /^"\[1\]" must be a variable name/],
        [["*"], /"\[0\]" must be a variable name/],
        [["A*B"], /must be a variable name/],
        [["A**"], /must be a variable name/],
        [["FOO-BAR"], /must be a variable name/],
        [[""], /"\[0\]"/],
        [["X".repeat(256)], /"\[0\]" is longer than 255 characters/],
        [["RUNBRIDGE_COMMIT_REF"], /^"\[0\]" cannot be allowed: RUNBRIDGE_\* variables are set by the platform$/],
        [["runbridge_*"], /cannot be allowed: RUNBRIDGE_/],
        [["A", "A"], /^"allowed_env_overrides" lists A twice$/],
        [[1], /"\[0\]" must be a string/],
        ["LOG_LEVEL", /"allowed_env_overrides" must be an array/],
        [Array.from({ length: 201 }, (_, i) => `K${i}`), /"allowed_env_overrides" has more than 200 entries/],
      ] as const) {
        expect([value, validate(value).error?.message]).toEqual([value, expect.stringMatching(detail)]);
      }
    });
  });

  it("is the list docs/operations-reference.md shows, group by group", () => {
    const doc = readFileSync(path.join(__dirname, "../../docs/operations-reference.md"), "utf8");
    const section = /### Which `env_overrides` a deploy accepts[\s\S]*?\| Group \| Names \|\n\|---\|---\|\n((?:\|.*\|\n)+)/.exec(doc)?.[1] ?? "";
    const documented = section
      .trim()
      .split("\n")
      .map((row) => [...(row.split("|")[2] ?? "").matchAll(/`([^`]+)`/g)].map((m) => m[1]));
    expect(documented).toEqual(REFUSED_DEPLOY_ENV.map((g) => [...g.names]));
  });

  it("lists only well-formed entries, each group with a reason", () => {
    for (const group of REFUSED_DEPLOY_ENV) {
      expect(group.why.length).toBeGreaterThan(20);
      for (const entry of group.names) expect(entry).toMatch(/^[A-Za-z_][A-Za-z0-9_]*\*?$/);
    }
  });
});
