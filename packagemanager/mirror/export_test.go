package mirror

import "net/url"

// ParseHTML and ParseJSON expose the page parsers to the fuzz tests in
// mirror_test.
func ParseHTML(pageURL string, data []byte) (*Project, error) {
	return parsePage(pageURL, data, parseHTML)
}
func ParseJSON(pageURL string, data []byte) (*Project, error) {
	return parsePage(pageURL, data, parseJSON)
}

func parsePage(pageURL string, data []byte, parse func(*url.URL, []byte) (*Project, error)) (*Project, error) {
	u, err := url.Parse(pageURL)
	if err != nil {
		return nil, err
	}
	return parse(u, data)
}
