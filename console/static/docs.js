// Starts the API viewer of the page (Swagger UI on /docs, ReDoc on /redoc) from a file,
// so the docs pages need no inline script under the console's Content-Security-Policy.
(function () {
  "use strict";
  var swagger = document.getElementById("swagger-ui");
  if (swagger) {
    SwaggerUIBundle({
      url: swagger.dataset.openapi,
      dom_id: "#swagger-ui",
      layout: "BaseLayout",
      deepLinking: true,
      showExtensions: true,
      showCommonExtensions: true,
      validatorUrl: null, // never send the spec to an outside validator
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
      // "Try it out" uses the admin's session cookie; changes need its CSRF token.
      requestInterceptor: function (request) {
        request.headers["X-CSRF-Token"] = swagger.dataset.csrf;
        return request;
      }
    });
  }
  var redoc = document.getElementById("redoc");
  if (redoc) {
    Redoc.init(redoc.dataset.openapi, {}, redoc);
  }
})();
