package faketokensvc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
)

// maxBody bounds every request body the service reads.
const maxBody = 64 << 10

// errorBody is the shape of every error answer, after RFC 6749 §5.2.
type errorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

func writeError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, errorBody{code, description})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store") // Answers may describe tokens.
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) // An error here means the client has gone.
}

// decodeJSON reads a body of exactly one JSON object into v, or answers the
// request with an error and reports false. It is strict on purpose: a
// misspelt field in a test's admin call should fail, not be ignored.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, _ := mime.ParseMediaType(ct); mt != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, "invalid_request", "Content-Type must be application/json, not "+ct)
			return false
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.Decode(new(json.RawMessage)) != io.EOF {
		err = errors.New("unexpected data after the JSON object")
	}
	if _, tooBig := errors.AsType[*http.MaxBytesError](err); tooBig {
		writeError(w, http.StatusRequestEntityTooLarge, "invalid_request", fmt.Sprintf("request body larger than %d bytes", maxBody))
		return false
	}
	switch {
	case err == nil:
		return true
	case errors.Is(err, io.EOF):
		writeError(w, http.StatusBadRequest, "invalid_request", "empty body: want a JSON object")
	default:
		writeError(w, http.StatusBadRequest, "invalid_request", "bad JSON body: "+err.Error())
	}
	return false
}
