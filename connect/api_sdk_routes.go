package connect

import "github.com/gin-gonic/gin"

// sdkRoutes adds the parts of the Server API that posit-sdk's integration
// suite needs beyond what routes() registers (docs/connect-sdk-suite.md):
// creating and locking users, the packages API and runtime caches.
func (s *Server) sdkRoutes(api *gin.RouterGroup) {
	api.POST("/v1/users", s.createUser)
	api.POST("/v1/users/:guid/lock", s.lockUser)

	api.GET("/v1/packages", s.listPackages)
	api.GET("/v1/content/:guid/packages", s.listContentPackages)
	api.GET("/v1/system/caches/runtime", s.listRuntimeCaches)
	api.DELETE("/v1/system/caches/runtime", s.deleteRuntimeCache)
}
