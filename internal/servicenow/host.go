package servicenow

import (
	"net/url"
	"strings"
)

// serviceNowDomains are the domains under which an instance's host name is
// <instance_name>.<domain>: the commercial cloud and the US government
// cloud.
var serviceNowDomains = []string{".service-now.com", ".servicenowservices.com"}

// InstanceName is the instance_name of the ServiceNow instance at
// instanceURL: the first label of its host name under a ServiceNow domain,
// "acme" for https://acme.service-now.com. Any other address (a custom
// domain, an IP address, a local simulator) does not say which instance
// answers there, and yields "".
func InstanceName(instanceURL string) string {
	u, err := url.Parse(strings.TrimSpace(instanceURL))
	if err != nil {
		return ""
	}
	host := strings.ToLower(u.Hostname())
	for _, d := range serviceNowDomains {
		if name, ok := strings.CutSuffix(host, d); ok && ValidInstanceName(name) {
			return name
		}
	}
	return ""
}

// ValidInstanceName reports whether s is one DNS label, as ServiceNow names
// instances.
func ValidInstanceName(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// CustomHost reports whether instanceURL's host is neither a ServiceNow
// instance's own (<instance>.service-now.com, <instance>.servicenowservices.com,
// see InstanceName) nor loopback (the local simulator): a proxy, a custom
// domain or any other host, which a gateway may call only when it was
// registered to (registry.Gateway.AllowCustomHost), since the gateway's
// credentials go to whoever answers there. A URL that does not parse is
// custom.
func CustomHost(instanceURL string) bool {
	if InstanceName(instanceURL) != "" {
		return false
	}
	u, err := url.Parse(strings.TrimSpace(instanceURL))
	return err != nil || !isLoopback(u.Hostname())
}
