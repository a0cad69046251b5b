package connect

import "github.com/gin-gonic/gin"

// sdkRoutes adds the parts of the Server API that posit-sdk's integration
// suite needs beyond what routes() registers (docs/connect-sdk-suite.md):
// creating and locking users.
func (s *Server) sdkRoutes(api *gin.RouterGroup) {
	api.POST("/v1/users", s.createUser)
	api.POST("/v1/users/:guid/lock", s.lockUser)
}
