package orders

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/spoolq/spool/shared/apiext"
	"github.com/spoolq/spool/shared/jobqueue"
)

// Routes are the demo's additions to the stock API: POST /v1/orders,
// GET /v1/orders/{id}, GET /v1/orders/stats and GET /v1/products.
func Routes(s *Store) []apiext.Route {
	return []apiext.Route{
		{Method: http.MethodPost, Path: "/v1/orders", Handle: s.placeRoute},
		{Method: http.MethodGet, Path: "/v1/orders/stats", Handle: s.statsRoute},
		{Method: http.MethodGet, Path: "/v1/orders/{id}", Handle: s.getRoute},
		{Method: http.MethodGet, Path: "/v1/products", Handle: s.productsRoute},
	}
}

// placeRoute writes the order, reserves its stock and enqueues its
// pipeline in one transaction, and answers at once.
func (s *Store) placeRoute(r *http.Request, req apiext.Request) (int, any, error) {
	var n NewOrder
	if err := req.Decode(&n); err != nil {
		return 0, nil, err
	}
	o, err := s.Place(r.Context(), n, req.RequestID)
	if err != nil {
		return 0, nil, routeError(err)
	}
	return http.StatusCreated, o, nil
}

func (s *Store) getRoute(r *http.Request, req apiext.Request) (int, any, error) {
	id, err := strconv.ParseInt(req.Vars["id"], 10, 64)
	if err != nil || id <= 0 {
		return 0, nil, routeError(ErrNotFound)
	}
	o, err := s.Get(r.Context(), id)
	if err != nil {
		return 0, nil, routeError(err)
	}
	return http.StatusOK, o, nil
}

func (s *Store) statsRoute(r *http.Request, _ apiext.Request) (int, any, error) {
	st, err := s.Stats(r.Context())
	return http.StatusOK, st, err
}

func (s *Store) productsRoute(r *http.Request, _ apiext.Request) (int, any, error) {
	ps, err := s.Products(r.Context())
	return http.StatusOK, map[string]any{"products": ps}, err
}

// routeError maps the store's errors to the client's statuses.
func routeError(err error) error {
	switch {
	case errors.Is(err, ErrInvalid), errors.Is(err, jobqueue.ErrInvalid):
		return &apiext.Error{Status: http.StatusUnprocessableEntity, Message: err.Error()}
	case errors.Is(err, ErrOutOfStock):
		return &apiext.Error{Status: http.StatusConflict, Message: err.Error()}
	case errors.Is(err, ErrNotFound):
		return &apiext.Error{Status: http.StatusNotFound, Message: "order not found"}
	}
	return err
}
