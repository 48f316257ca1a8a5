package deploy

// The observe profile of docker-compose.yaml: Prometheus and Grafana in the
// shared namespace, their files in deploy/prometheus and deploy/grafana,
// against the edges' configs and bootstraps. Prometheus's config is read
// strictly, the dashboard's queries by Prometheus's own PromQL parser.
// That every series the dashboard queries exists in a real switchyard's and
// Envoy's exposition is integration/dashboard_test.go's check (it runs
// cmd/dashboard-metrics).

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/switchyard/switchyard/integration/deploy/dashboard"
)

const (
	observeProfile   = "observe"
	svcPrometheus    = "prometheus"
	svcGrafana       = "grafana"
	prometheusModule = "github.com/prometheus/prometheus"

	dashboardFile = "deploy/grafana/dashboards/switchyard.json"
	edgeVariable  = "edge" // the dashboard's template variable and prometheus.yml's label
)

var observeServices = []string{svcGrafana, svcPrometheus}

// prometheusFlags are the flags of the pinned Prometheus release that the
// service may set (`prometheus --help`); another needs a look at that
// release's help first.
var prometheusFlags = []string{"config.file", "storage.tsdb.path", "storage.tsdb.retention.time", "web.listen-address"}

// grafanaEnv is the Grafana settings the service may set, each checked here.
var grafanaEnv = []string{
	"GF_SERVER_HTTP_PORT", "GF_AUTH_ANONYMOUS_ENABLED", "GF_AUTH_ANONYMOUS_ORG_ROLE",
	"GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH", "GF_ANALYTICS_REPORTING_ENABLED",
	"GF_ANALYTICS_CHECK_FOR_UPDATES", "GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES", "GF_NEWS_NEWS_FEED_ENABLED",
}

// Where Grafana's image reads its provisioning.
const (
	grafanaDatasources = "/etc/grafana/provisioning/datasources"
	grafanaProviders   = "/etc/grafana/provisioning/dashboards"
)

// promFlags parses the prometheus service's command (the image's
// entrypoint is prometheus): --name=value each, known, set once.
func promFlags(t *testing.T, s types.ServiceConfig) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, a := range s.Command {
		name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") || !ok {
			t.Fatalf("prometheus command %q: write each flag as --name=value (%q)", s.Command, a)
		}
		if !slices.Contains(prometheusFlags, name) {
			t.Fatalf("prometheus command sets --%s, which these checks do not know (%v)", name, prometheusFlags)
		}
		if _, dup := out[name]; dup {
			t.Fatalf("prometheus command sets --%s twice", name)
		}
		out[name] = value
	}
	return out
}

// grafanaSettings is the grafana service's environment, each key known.
func grafanaSettings(t *testing.T, s types.ServiceConfig) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, v := range s.Environment {
		if !slices.Contains(grafanaEnv, k) {
			t.Fatalf("grafana sets %s, which these checks do not know (%v)", k, grafanaEnv)
		}
		if v == nil {
			t.Fatalf("grafana's %s has no value; the stack must not take it from the caller's environment", k)
		}
		out[k] = *v
	}
	return out
}

// observeUI is a web UI of the observe profile and where it listens in the
// shared namespace.
type observeUI struct {
	what   string
	listen netip.AddrPort
}

// observeUIs are Prometheus's and Grafana's listening addresses.
func observeUIs(t *testing.T, p *types.Project) []observeUI {
	t.Helper()
	prom, err := netip.ParseAddrPort(promFlags(t, service(t, p, svcPrometheus))["web.listen-address"])
	if err != nil {
		t.Fatalf("prometheus --web.listen-address: %v (set it, as 0.0.0.0:PORT)", err)
	}
	port, err := strconv.ParseUint(grafanaSettings(t, service(t, p, svcGrafana))["GF_SERVER_HTTP_PORT"], 10, 16)
	if err != nil {
		t.Fatalf("grafana GF_SERVER_HTTP_PORT: %v (set it)", err)
	}
	// GF_SERVER_HTTP_ADDR unset: every interface.
	return []observeUI{
		{svcPrometheus + " --web.listen-address", prom},
		{svcGrafana + " GF_SERVER_HTTP_PORT", netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(port))},
	}
}

// deployModuleVersion is the version of a module this module's go.mod
// requires.
func deployModuleVersion(t *testing.T, module string) string {
	t.Helper()
	out, err := exec.Command("go", "mod", "edit", "-json").Output()
	if err != nil {
		t.Fatalf("go mod edit -json: %v", err)
	}
	var mod goMod
	if err := json.Unmarshal(out, &mod); err != nil {
		t.Fatal(err)
	}
	for _, r := range mod.Require {
		if r.Path == module {
			return r.Version
		}
	}
	t.Fatalf("integration/deploy's go.mod does not require %s", module)
	return ""
}

func TestComposeObserveProfile(t *testing.T) {
	// `docker compose up` runs what it ran before; the observe services
	// come with --profile observe only.
	p := loadComposeAll(t)
	for _, name := range p.ServiceNames() {
		s := service(t, p, name)
		want := []string(nil)
		if slices.Contains(observeServices, name) {
			want = []string{observeProfile}
		}
		if !slices.Equal(s.Profiles, want) {
			t.Errorf("%s profiles = %q, want %q", name, s.Profiles, want)
		}
	}
	g := service(t, p, svcGrafana)
	if _, ok := g.DependsOn[svcPrometheus]; !ok {
		t.Errorf("grafana depends_on = %v, want prometheus, its data source", slices.Sorted(maps.Keys(g.DependsOn)))
	}
}

func TestComposePrometheus(t *testing.T) {
	p := loadComposeAll(t)
	s := service(t, p, svcPrometheus)

	// The image is the release whose PromQL parser reads the dashboard
	// here: module v0.3MM.P is Prometheus v3.MM.P.
	v := deployModuleVersion(t, prometheusModule)
	m := regexp.MustCompile(`^v0\.3(\d\d)\.(\d+)$`).FindStringSubmatch(v)
	if m == nil {
		t.Fatalf("%s %s is not a v0.3MM.P module version of Prometheus 3", prometheusModule, v)
	}
	minor, _ := strconv.Atoi(m[1])
	if want := fmt.Sprintf("prom/prometheus:v3.%d.%s", minor, m[2]); s.Image != want {
		t.Errorf("prometheus image = %q, want %q (the release of %s %s, whose parser reads the dashboard)", s.Image, want, prometheusModule, v)
	}

	flags := promFlags(t, s)
	cfgPath := flags["config.file"]
	if !path.IsAbs(cfgPath) {
		t.Fatalf("prometheus --config.file=%q: want an absolute path in the container", cfgPath)
	}
	host, _ := resolveMount(t, svcPrometheus, s, cfgPath)
	if want := repoPath("deploy/prometheus/prometheus.yml"); filepath.Clean(host) != want {
		t.Errorf("prometheus reads %s, which is %s on the host, want %s", cfgPath, host, want)
	}
	// The store: a tmpfs the image's user (nobody) can write.
	store := flags["storage.tsdb.path"]
	var tmpfs *types.ServiceVolumeConfig
	for i, vol := range s.Volumes {
		if path.Clean(vol.Target) == path.Clean(store) {
			tmpfs = &s.Volumes[i]
		}
	}
	switch {
	case store == "":
		t.Error("prometheus sets no --storage.tsdb.path; the image's default is an anonymous volume")
	case tmpfs == nil || tmpfs.Type != types.VolumeTypeTmpfs:
		t.Errorf("prometheus's store %s is not a tmpfs mount", store)
	case tmpfs.Tmpfs == nil || tmpfs.Tmpfs.Mode != 0o1777:
		mode := uint32(0)
		if tmpfs.Tmpfs != nil {
			mode = tmpfs.Tmpfs.Mode
		}
		t.Errorf("prometheus's store tmpfs has mode %o, want 1777: the image runs as nobody", mode)
	}
	if r := flags["storage.tsdb.retention.time"]; r != "" {
		if _, err := model.ParseDuration(r); err != nil {
			t.Errorf("--storage.tsdb.retention.time=%s: %v", r, err)
		}
	}

	// The config: both edges' switchyard and Envoy, on the shared
	// namespace's loopback, each pair labelled with its edge.
	cfg, err := dashboard.LoadPrometheus(host)
	if err != nil {
		t.Fatal(err)
	}
	durations := map[string]string{"global.scrape_interval": cfg.Global.ScrapeInterval, "global.scrape_timeout": cfg.Global.ScrapeTimeout, "global.evaluation_interval": cfg.Global.EvaluationInterval}
	parsed := map[string]model.Duration{}
	for k, d := range durations {
		if d == "" {
			continue
		}
		v, err := model.ParseDuration(d)
		if err != nil {
			t.Errorf("%s %q: %v", k, d, err)
		}
		parsed[k] = v
	}
	if parsed["global.scrape_timeout"] > parsed["global.scrape_interval"] {
		t.Errorf("scrape_timeout %s exceeds scrape_interval %s", cfg.Global.ScrapeTimeout, cfg.Global.ScrapeInterval)
	}

	type target struct{ addr, edge string }
	want := map[string]map[target]bool{"switchyard": {}, "envoy": {}}
	for _, e := range edges {
		_, _, swCfg := switchyardConfig(t, p, e.switchyard)
		admin := adminAddr(t, swCfg)
		if !admin.Addr().IsUnspecified() && !admin.Addr().IsLoopback() {
			t.Errorf("%s's server.admin %s is not on the namespace's loopback, where Prometheus scrapes", e.switchyard, admin)
		}
		if swCfg.Cluster == nil || swCfg.Cluster.Replica == "" {
			t.Fatalf("%s's config has no cluster.replica to label the edge with", e.switchyard)
		}
		edge := swCfg.Cluster.Replica
		want["switchyard"][target{net.JoinHostPort("127.0.0.1", strconv.Itoa(int(admin.Port()))), edge}] = true
		envoyAdmin := bootstrapAdmin(t, e)
		if envoyAdmin.Port() != uint16(e.envoyAdminPort()) {
			t.Errorf("%s's admin port %d, but the edge's is %d", e.bootstrapFile(), envoyAdmin.Port(), e.envoyAdminPort())
		}
		want["envoy"][target{net.JoinHostPort(envoyAdmin.Addr().String(), strconv.Itoa(int(envoyAdmin.Port()))), edge}] = true
	}
	wantPath := map[string]string{"switchyard": "/metrics", "envoy": "/stats/prometheus"}
	seen := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		if seen[sc.JobName] {
			t.Errorf("job %s twice", sc.JobName)
		}
		seen[sc.JobName] = true
		wantTargets, ok := want[sc.JobName]
		if !ok {
			t.Errorf("job %q scrapes neither switchyard nor Envoy", sc.JobName)
			continue
		}
		if sc.MetricsPath != wantPath[sc.JobName] {
			t.Errorf("job %s metrics_path %q, want %q", sc.JobName, sc.MetricsPath, wantPath[sc.JobName])
		}
		if sc.ScrapeInterval != "" {
			if _, err := model.ParseDuration(sc.ScrapeInterval); err != nil {
				t.Errorf("job %s scrape_interval: %v", sc.JobName, err)
			}
		}
		if f := sc.FallbackScrapeProtocol; f != "" && f != "PrometheusText0.0.4" {
			t.Errorf("job %s fallback_scrape_protocol %q: Envoy and switchyard speak PrometheusText0.0.4", sc.JobName, f)
		}
		got := map[target]bool{}
		for _, st := range sc.StaticConfigs {
			if keys := slices.Sorted(maps.Keys(st.Labels)); !slices.Equal(keys, []string{edgeVariable}) {
				t.Errorf("job %s targets %v carry labels %v, want only %s", sc.JobName, st.Targets, keys, edgeVariable)
			}
			for _, tg := range st.Targets {
				got[target{tg, st.Labels[edgeVariable]}] = true
			}
		}
		if !maps.Equal(got, wantTargets) {
			t.Errorf("job %s targets %v, want %v (each edge's %s admin API, labelled with its cluster.replica)", sc.JobName, slices.Collect(maps.Keys(got)), slices.Collect(maps.Keys(wantTargets)), sc.JobName)
		}
	}
	for job := range want {
		if !seen[job] {
			t.Errorf("prometheus.yml has no %s job", job)
		}
	}
}

// bootstrapAdmin reads the admin address of the edge's bootstrap file
// (YAML, or JSON, which YAML reads too).
func bootstrapAdmin(t *testing.T, e edge) netip.AddrPort {
	t.Helper()
	var bs struct {
		Admin struct {
			Address struct {
				SocketAddress struct {
					Address   string `yaml:"address"`
					PortValue uint16 `yaml:"port_value"`
				} `yaml:"socket_address"`
			} `yaml:"address"`
		} `yaml:"admin"`
	}
	if err := yaml.Unmarshal(readRepoFile(t, e.bootstrapFile()), &bs); err != nil {
		t.Fatalf("%s: %v", e.bootstrapFile(), err)
	}
	sa := bs.Admin.Address.SocketAddress
	a, err := netip.ParseAddr(sa.Address)
	if err != nil || sa.PortValue == 0 {
		t.Fatalf("%s: admin address %q port %d", e.bootstrapFile(), sa.Address, sa.PortValue)
	}
	return netip.AddrPortFrom(a, sa.PortValue)
}

// provisionedDatasource is the one data source of deploy/grafana's
// provisioning.
type provisionedDatasource struct {
	Name      string         `yaml:"name"`
	UID       string         `yaml:"uid"`
	Type      string         `yaml:"type"`
	Access    string         `yaml:"access"`
	URL       string         `yaml:"url"`
	IsDefault bool           `yaml:"isDefault"`
	Editable  bool           `yaml:"editable"`
	JSONData  map[string]any `yaml:"jsonData"`
}

// provisioning reads every YAML file of a provisioning directory strictly
// into a new T each.
func provisioning[T any](t *testing.T, dir string) map[string]*T {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*T{}
	for _, ent := range entries {
		if ext := filepath.Ext(ent.Name()); ext != ".yaml" && ext != ".yml" {
			t.Errorf("%s: %s is not a YAML file, which Grafana's provisioning skips", dir, ent.Name())
			continue
		}
		f, err := os.Open(filepath.Join(dir, ent.Name()))
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(f)
		dec.KnownFields(true)
		v := new(T)
		err = dec.Decode(v)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", filepath.Join(dir, ent.Name()), err)
		}
		out[ent.Name()] = v
	}
	return out
}

// grafanaDatasource is the provisioned data source, checked against the
// prometheus service.
func grafanaDatasource(t *testing.T, p *types.Project) provisionedDatasource {
	t.Helper()
	g := service(t, p, svcGrafana)
	dir, m := resolveMount(t, svcGrafana, g, grafanaDatasources)
	if path.Clean(m.Target) != grafanaDatasources {
		t.Fatalf("grafana mounts %s inside %s; mount the provisioning directory itself", grafanaDatasources, m.Target)
	}
	var all []provisionedDatasource
	for name, f := range provisioning[struct {
		APIVersion  int                     `yaml:"apiVersion"`
		Datasources []provisionedDatasource `yaml:"datasources"`
	}](t, dir) {
		if f.APIVersion != 1 {
			t.Errorf("%s: apiVersion %d, want 1", name, f.APIVersion)
		}
		all = append(all, f.Datasources...)
	}
	if len(all) != 1 {
		t.Fatalf("%d provisioned data sources, want the one Prometheus", len(all))
	}
	return all[0]
}

func TestComposeGrafana(t *testing.T) {
	p := loadComposeAll(t)
	g := service(t, p, svcGrafana)
	if !regexp.MustCompile(`^grafana/grafana:\d+\.\d+\.\d+$`).MatchString(g.Image) {
		t.Errorf("grafana image %q, want grafana/grafana:X.Y.Z, one release", g.Image)
	}
	env := grafanaSettings(t, g)
	if env["GF_AUTH_ANONYMOUS_ENABLED"] != "true" {
		t.Errorf("GF_AUTH_ANONYMOUS_ENABLED = %q, want true: the dashboard opens without signing in", env["GF_AUTH_ANONYMOUS_ENABLED"])
	}
	if role := env["GF_AUTH_ANONYMOUS_ORG_ROLE"]; role != "Viewer" {
		t.Errorf("GF_AUTH_ANONYMOUS_ORG_ROLE = %q, want Viewer: anonymous users may look, not change", role)
	}
	for _, k := range []string{"GF_ANALYTICS_REPORTING_ENABLED", "GF_ANALYTICS_CHECK_FOR_UPDATES", "GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES", "GF_NEWS_NEWS_FEED_ENABLED"} {
		if env[k] != "false" {
			t.Errorf("%s = %q, want false: nothing in the stack calls out", k, env[k])
		}
	}
	home := env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
	if host, _ := resolveMount(t, svcGrafana, g, home); filepath.Clean(host) != repoPath(dashboardFile) {
		t.Errorf("the home dashboard %s is %s on the host, want %s", home, host, dashboardFile)
	}

	// The data source: Prometheus, where the prometheus service listens in
	// the shared namespace.
	ds := grafanaDatasource(t, p)
	if ds.Type != "prometheus" || ds.UID == "" || !ds.IsDefault || ds.Access != "proxy" {
		t.Errorf("data source %+v, want type prometheus, a uid, the default, access proxy (Grafana's server queries)", ds)
	}
	u, err := url.Parse(ds.URL)
	if err != nil {
		t.Fatalf("data source url %q: %v", ds.URL, err)
	}
	listen := observeUIs(t, p)[0].listen
	host, err := netip.ParseAddr(u.Hostname())
	if u.Scheme != "http" || err != nil || !host.IsLoopback() || u.Port() != strconv.Itoa(int(listen.Port())) || strings.Trim(u.Path, "/") != "" {
		t.Errorf("data source url %q, want http://127.0.0.1:%d: the prometheus service (--web.listen-address %s) in the shared namespace", ds.URL, listen.Port(), listen)
	}
	if ti, ok := ds.JSONData["timeInterval"].(string); ok {
		prom, err := dashboard.LoadPrometheus(repoPath("deploy/prometheus/prometheus.yml"))
		if err != nil {
			t.Fatal(err)
		}
		if ti != prom.Global.ScrapeInterval {
			t.Errorf("data source timeInterval %s, want prometheus.yml's scrape_interval %s", ti, prom.Global.ScrapeInterval)
		}
	}

	// The dashboards: a file provider over a mounted directory holding
	// every dashboard of the checkout.
	dir, m := resolveMount(t, svcGrafana, g, grafanaProviders)
	if path.Clean(m.Target) != grafanaProviders {
		t.Fatalf("grafana mounts %s inside %s; mount the provisioning directory itself", grafanaProviders, m.Target)
	}
	type provider struct {
		Name                  string `yaml:"name"`
		Type                  string `yaml:"type"`
		Folder                string `yaml:"folder"`
		DisableDeletion       bool   `yaml:"disableDeletion"`
		AllowUIUpdates        bool   `yaml:"allowUiUpdates"`
		UpdateIntervalSeconds int    `yaml:"updateIntervalSeconds"`
		Options               struct {
			Path string `yaml:"path"`
		} `yaml:"options"`
	}
	var providers []provider
	for name, f := range provisioning[struct {
		APIVersion int        `yaml:"apiVersion"`
		Providers  []provider `yaml:"providers"`
	}](t, dir) {
		if f.APIVersion != 1 {
			t.Errorf("%s: apiVersion %d, want 1", name, f.APIVersion)
		}
		providers = append(providers, f.Providers...)
	}
	if len(providers) != 1 {
		t.Fatalf("%d dashboard providers, want 1", len(providers))
	}
	pr := providers[0]
	if pr.Type != "file" || pr.AllowUIUpdates {
		t.Errorf("dashboard provider %+v, want type file, no UI updates (the files are mounted read-only)", pr)
	}
	dashDir, _ := resolveMount(t, svcGrafana, g, pr.Options.Path)
	if filepath.Clean(dashDir) != repoPath(path.Dir(dashboardFile)) {
		t.Errorf("the provider reads %s, which is %s on the host, want %s", pr.Options.Path, dashDir, path.Dir(dashboardFile))
	}
	files, _ := filepath.Glob(filepath.Join(dashDir, "*.json"))
	if !slices.Contains(files, filepath.Join(dashDir, filepath.Base(dashboardFile))) {
		t.Errorf("%s holds %v, not %s", dashDir, files, filepath.Base(dashboardFile))
	}
}

func TestDashboard(t *testing.T) {
	// The dashboard as Grafana reads it: every panel on the provisioned
	// data source with queries, every query parsed by PromQL's parser,
	// every variable it uses defined, every selector filtered by the edge.
	d, err := dashboard.Load(repoPath(dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	ds := grafanaDatasource(t, loadComposeAll(t))
	wantDS := dashboard.Datasource{Type: ds.Type, UID: ds.UID}
	if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 {
		t.Errorf("dashboard uid %q, title %q, schemaVersion %d: want all three", d.UID, d.Title, d.SchemaVersion)
	}

	prom, err := dashboard.LoadPrometheus(repoPath("deploy/prometheus/prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	if !vars[edgeVariable] {
		t.Fatalf("the dashboard has no %s variable", edgeVariable)
	}
	for _, v := range d.Templating.List {
		if v.Datasource == nil || *v.Datasource != wantDS {
			t.Errorf("variable %s: data source %+v, want %+v", v.Name, v.Datasource, wantDS)
		}
		if v.Name != edgeVariable {
			continue
		}
		_, label, err := v.VariableQuery()
		if err != nil {
			t.Error(err)
		} else if label != edgeVariable || !slices.Contains(prom.TargetLabels(), label) {
			t.Errorf("variable %s lists the values of %q, want prometheus.yml's target label %s", v.Name, label, edgeVariable)
		}
		if v.Type != "query" || !v.Multi || !v.IncludeAll {
			t.Errorf("variable %s: type %q multi %v includeAll %v, want a query with several values and All", v.Name, v.Type, v.Multi, v.IncludeAll)
		}
	}

	ids := map[int]string{}
	panels := 0
	for _, p := range d.AllPanels() {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if g := p.GridPos; g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v off Grafana's 24 columns", p.Title, g)
		}
		if p.Type == "row" {
			if len(p.Targets) != 0 {
				t.Errorf("row %q has queries", p.Title)
			}
			continue
		}
		panels++
		if p.Title == "" {
			t.Errorf("panel %d has no title", p.ID)
		}
		if p.Datasource == nil || *p.Datasource != wantDS {
			t.Errorf("panel %q: data source %+v, want the provisioned %+v", p.Title, p.Datasource, wantDS)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: query refId %q empty or repeated", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource != nil && *tg.Datasource != wantDS {
				t.Errorf("panel %q query %s: data source %+v, want %+v", p.Title, tg.RefID, tg.Datasource, wantDS)
			}
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q query %s has no expression", p.Title, tg.RefID)
			}
			for _, name := range dashboard.Variables(tg.Expr) {
				if !vars[name] && !dashboard.IsBuiltin(name) {
					t.Errorf("panel %q query %s uses $%s, which is no variable of the dashboard", p.Title, tg.RefID, name)
				}
			}
		}
	}
	if panels == 0 {
		t.Fatal("the dashboard has no panels")
	}

	queries, err := d.Queries()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range queries {
		for _, s := range q.Selections {
			if !strings.HasPrefix(s.Metric, "switchyard_") && !strings.HasPrefix(s.Metric, "envoy_") {
				t.Errorf("panel %q query %s selects %s, neither switchyard's nor Envoy's", q.Panel, q.RefID, s.Metric)
			}
			if strings.HasPrefix(q.Panel, "variable ") {
				continue
			}
			// The edge selector applies to every panel.
			if !slices.Contains(s.Matchers, edgeVariable+`=~"$`+edgeVariable+`"`) {
				t.Errorf("panel %q query %s: %s is not filtered by %s=~\"$%s\" (matchers %q)", q.Panel, q.RefID, s.Metric, edgeVariable, edgeVariable, s.Matchers)
			}
		}
	}
	t.Logf("%d panels, %d queries parsed", panels, len(queries))
}
